#!/bin/bash
# restic.sh LVSNAP MIB [ROUNDS] — runs in the test VM. A thick ext4 volume holding MIB MiB (3/4
# in 1 MiB files, 1/4 in 16 KiB files) is snapshotted; each round, with empty local
# repositories, a cold page cache and the two in alternating order, times a bare
# `restic backup` of the mounted snapshot (the argv lvsnap passes: --json, --host, --time,
# --tag, --one-file-system, from the mount point) against `lvsnap backup` of the same snapshot
# (its mount bracket, restic, the manifest hashed beside it, restic's listing compared with the
# manifest, the record). Then 1% of the files are rewritten, a new snapshot is taken, and both
# back it up again on top of their first backup (restic's --parent), timed with the bytes each
# added. BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; MIB=${2:-256}; ROUNDS=${3:-3}
# lvsnap's debug log (each command it ran, with its milliseconds) shows where its own time goes.
export RUST_LOG=lvsnap=debug LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml RESTIC_PASSWORD_FILE=/etc/lvsnap/restic.pass
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
field() { echo "$2" | grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L $((MIB * 3 / 2 + 256))M -n home vg0 > /dev/null
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 /dev/vg0/home
mkfs.ext4 -q /dev/vdb
mkdir -p /mnt/home /mnt/target /mnt/snap /etc/lvsnap
mount /dev/vg0/home /mnt/home; mount /dev/vdb /mnt/target
mkdir /mnt/home/big /mnt/home/small
head -c $((MIB * 3 / 4))M /dev/urandom > /mnt/home/big.tmp
(cd /mnt/home/big && split -b 1M -a 4 ../big.tmp f) && rm /mnt/home/big.tmp
head -c $((MIB / 4))M /dev/urandom > /mnt/home/small.tmp
(cd /mnt/home/small && split -b 16K -a 5 ../small.tmp f) && rm /mnt/home/small.tmp
sync
FILES=$(find /mnt/home -type f | wc -l)
echo "data: $FILES files, $(du -sm /mnt/home | cut -f1) MiB; $(restic version)"
printf 'benchmark password\n' > $RESTIC_PASSWORD_FILE; chmod 600 $RESTIC_PASSWORD_FILE
policy() {  # a new catalog each round, so no round starts from another's parent; the record
  # that the credentials opened the repository is kept (round 1 checks them before mounting)
  find /var/lib/lvsnap -mindepth 1 -maxdepth 1 ! -name restic-opened -exec rm -rf {} + 2> /dev/null || true
  cat > $LVSNAP_CONFIG <<TOML
[settings]
timezone = "UTC"
catalog = "/var/lib/lvsnap/catalog.db"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "256M"
keep = { last = 10 }
[policy.home.backup]
schedule = "0 2 * * *"
engine = "restic"
repository = "/mnt/target/lvsnap"
password-file = "$RESTIC_PASSWORD_FILE"
host = "bench"
keep = { last = 10 }
TOML
}
bare() {  # SNAPSHOT-LV [PARENT]: restic as lvsnap runs it, on the snapshot mounted by hand
  mount -t ext4 -o ro,noload "/dev/vg0/$1" /mnt/snap
  cold; local s; s=$(date +%s%N)
  out=$(cd /mnt/snap && restic -r /mnt/target/bare --cache-dir /tmp/bare-cache backup --json \
    --host bench --time "$(date -u '+%Y-%m-%d %H:%M:%S')" --tag lvsnap,lvsnap-policy=home \
    --one-file-system ${2:+--parent "$2"} . | tail -1)
  BARE_MS=$(ms $s); umount /mnt/snap
  BARE_ID=$(echo "$out" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p')
  BARE_ADDED=$(field data_added "$out")
}
lvsnap_backup() {
  cold; local s; s=$(date +%s%N)
  out=$($LVSNAP backup home --json 2> /tmp/lvsnap.log)
  LV_MS=$(ms $s)
  cat /tmp/lvsnap.log >&2
  # whether lvsnap opened the repository (restic cat config) before mounting
  CHECKED=$(grep -c 'command="restic cat"' /tmp/lvsnap.log || true)
  # restic, started before lvsnap walks the snapshot, may wait for the walk: lvsnap's time too
  WAITED=$(sed -n 's/.*restic waited for the walk.* ms=\([0-9]*\).*/\1/p' /tmp/lvsnap.log | head -1)
  LV_COPY=$(field copy_seconds "$out"); LV_HASH=$(field hash_seconds "$out")
  LV_LIST=$(echo "$out" | grep -o '"proof":{"seconds":[0-9.]*' | grep -o '[0-9.]*$')
  LV_ADDED=$(field data_added "$out")
  echo "$out" | grep -q '"status":"done"' || { echo "lvsnap backup failed: $out"; exit 1; }
}
row() {  # KIND ROUND ORDER
  # lvsnap's own part besides the manifest: its wall time less restic's run and the listing
  # check, plus what restic waited for lvsnap's walk; "without the manifest" adds that to the
  # bare run (restic shares the 2 cores with the manifest's hashing inside lvsnap, so this is
  # an estimate).
  awk -v k=$1 -v i=$2 -v o=$3 -v ch=$CHECKED -v wt=${WAITED:-0} -v b=$BARE_MS -v w=$LV_MS -v c=$LV_COPY -v h=$LV_HASH -v l=$LV_LIST -v ba=$BARE_ADDED -v la=$LV_ADDED \
    'BEGIN {own = w - c * 1000 - l * 1000 + wt;
            printf "%-5s %5d  %-11s %7s  %6d  %8d  %9d  %10d  %10d  %10d  %8d  %10.3f  %12.3f  %10.2f  %10.2f\n",
                   k, i, o, ch ? "yes" : "no", wt, b, w, c * 1000, h * 1000, l * 1000, own, w / b, (b + own) / b, ba / 1048576, la / 1048576}'
}
echo "kind  round  order        checked  waited  bare_ms  lvsnap_ms  restic_ms  manifest_ms  listing_ms  own_ms  lvsnap/bare  w/o_manifest  bare_MiB+  lvsnap_MiB+"
for i in $(seq "$ROUNDS"); do
  lvremove -q -y $(lvs --noheadings -o lv_path vg0 | grep lvsnap) > /dev/null 2>&1 || true
  rm -rf /mnt/target/bare /mnt/target/lvsnap /tmp/bare-cache
  restic -r /mnt/target/bare init > /dev/null; restic -r /mnt/target/lvsnap init > /dev/null
  policy
  sleep 1; snap=$($LVSNAP snapshot home | sed -n 's/.*created //p')
  if [ $((i % 2)) = 1 ]; then order=bare-first; bare $snap; lvsnap_backup
  else order=lvsnap-first; lvsnap_backup; bare $snap; fi
  row full $i $order
  # 1% of the files rewritten (in place, as an application would), then the incremental pair.
  yes $i | head -c 1M > /tmp/random-source || true
  find /mnt/home -type f | sort | shuf -n $((FILES / 100)) --random-source=/tmp/random-source | while read -r f; do
    head -c "$(stat -c %s "$f")" /dev/urandom | dd of="$f" conv=notrunc status=none
  done
  sync; sleep 1; snap=$($LVSNAP snapshot home | sed -n 's/.*created //p')
  if [ $((i % 2)) = 1 ]; then bare $snap $BARE_ID; lvsnap_backup
  else lvsnap_backup; bare $snap $BARE_ID; fi
  row incr $i $order
done
