#!/bin/bash
# backup.sh LVSNAP MIB [PAIRS] — runs in the test VM. A thick ext4 volume holding MIB MiB (3/4
# in 1 MiB files, 1/4 in 16 KiB files) is snapshotted; each round times, on the same mounted
# snapshot with a cold page cache and an empty target (no --link-dest shortcut): a plain
# `rsync -a`; the exact rsync lvsnap runs (`-aHAXS --numeric-ids`: hard links, ACLs, xattrs,
# sparse files), bare, and the same followed by `sync` (lvsnap syncs before it commits); the
# rsync lvsnap runs, which skips rsync's transfer checksum (`--checksum-choice=none`: lvsnap
# compares what was written with the snapshot itself); and
# `lvsnap backup` (its copy, its overlapped hashing, its proof and that proof's parts: the walk
# of the generation, the sync, how many files were read back while rsync still copied).
# Then hashing: sha256sum vs the manifest code on 1 and 2 threads (warm cache). BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; MIB=${2:-1024}; PAIRS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L $((MIB * 3 / 2 + 256))M -n home vg0 > /dev/null
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 /dev/vg0/home
mkfs.ext4 -q /dev/vdb
mkdir -p /mnt/home /mnt/target /mnt/snap
mount /dev/vg0/home /mnt/home; mount /dev/vdb /mnt/target
s=$(date +%s%N)
mkdir /mnt/home/big /mnt/home/small
head -c $((MIB * 3 / 4))M /dev/urandom > /mnt/home/big.tmp
(cd /mnt/home/big && split -b 1M -a 4 ../big.tmp f) && rm /mnt/home/big.tmp
head -c $((MIB / 4))M /dev/urandom > /mnt/home/small.tmp
(cd /mnt/home/small && split -b 16K -a 5 ../small.tmp f) && rm /mnt/home/small.tmp
sync
echo "data: $(find /mnt/home -type f | wc -l) files, $(du -sm /mnt/home | cut -f1) MiB, made in $(ms $s) ms"
mkdir -p /etc/lvsnap
cat > $LVSNAP_CONFIG <<'TOML'
[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "256M"
keep = { last = 10 }
[policy.home.backup]
schedule = "0 2 * * *"
target = "/mnt/target/lvsnap"
keep = { last = 10 }
TOML
echo "round  rsync-a_ms  rsync-aHAXS_ms  +sync_ms  nosum_ms  lvsnap_copy_ms  lvsnap_hash_ms  lvsnap_proof_ms  walk_ms  sync_ms  early/read  lvsnap_wall_ms  HAXS/a  lvsnap_wall/HAXS  lvsnap_wall/HAXS+sync  lvsnap_wall/nosum"
for i in $(seq "$PAIRS"); do
  rm -rf /mnt/target/plain /mnt/target/lvsnap
  sleep 1; snap=$($LVSNAP snapshot home | sed -n 's/.*created //p')
  mount -t ext4 -o ro,noload /dev/vg0/$snap /mnt/snap
  cold; s=$(date +%s%N); rsync -a /mnt/snap/ /mnt/target/plain/; plain=$(ms $s)
  rm -rf /mnt/target/plain
  cold; s=$(date +%s%N); rsync -aHAXS --numeric-ids /mnt/snap/ /mnt/target/plain/; haxs=$(ms $s)
  rm -rf /mnt/target/plain
  cold; s=$(date +%s%N); rsync -aHAXS --numeric-ids /mnt/snap/ /mnt/target/plain/; sync; synced=$(ms $s)
  rm -rf /mnt/target/plain
  cold; s=$(date +%s%N); rsync -aHAXS --numeric-ids --checksum-choice=none /mnt/snap/ /mnt/target/plain/; nosum=$(ms $s)
  rm -rf /mnt/target/plain
  umount /mnt/snap
  cold; s=$(date +%s%N); out=$($LVSNAP backup home --json); wall=$(ms $s)
  copy=$(echo "$out" | grep -o '"copy_seconds":[0-9.]*' | cut -d: -f2)
  hash=$(echo "$out" | grep -o '"hash_seconds":[0-9.]*' | cut -d: -f2)
  # The proof: the written generation read back and hashed before it is called complete.
  proof=$(echo "$out" | grep -o '"proof":{"seconds":[0-9.]*' | grep -o '[0-9.]*$')
  walk=$(echo "$out" | grep -o '"walk_seconds":[0-9.]*' | cut -d: -f2)
  fsync=$(echo "$out" | grep -o '"sync_seconds":[0-9.]*' | cut -d: -f2)
  read=$(echo "$out" | grep -o '"read_back":[0-9]*' | cut -d: -f2)
  early=$(echo "$out" | grep -o '"read_during_copy":[0-9]*' | cut -d: -f2)
  awk -v i=$i -v p=$plain -v x=$haxs -v y=$synced -v n=$nosum -v c=$copy -v h=$hash -v f=$proof -v k=$walk -v z=$fsync -v e="$early/$read" -v w=$wall \
    'BEGIN {printf "%5d  %10d  %14d  %8d  %8d  %14d  %14d  %15d  %7d  %7d  %10s  %14d  %6.3f  %16.3f  %21.3f  %17.3f\n", i, p, x, y, n, c * 1000, h * 1000, f * 1000, k * 1000, z * 1000, e, w, x / p, w / x, w / y, w / n}'
done
step_hash() {
  mount -t ext4 -o ro,noload /dev/vg0/$snap /mnt/snap
  cat /mnt/snap/*/* > /dev/null
  s=$(date +%s%N); (cd /mnt/snap && find . -type f -print0 | xargs -0 sha256sum > /dev/null); t=$(ms $s)
  awk -v ms=$t -v mib="$MIB" 'BEGIN {printf "sha256sum: %d MiB in %.2f s = %.0f MiB/s\n", mib, ms / 1000, mib / (ms / 1000)}'
  "$ROOT/target/release/examples/manifest" /mnt/snap 1
  "$ROOT/target/release/examples/manifest" /mnt/snap 2
  umount /mnt/snap
}
step_hash
