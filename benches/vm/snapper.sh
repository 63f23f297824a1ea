#!/bin/bash
# snapper.sh LVSNAP PAIRS — runs in the test VM (image with snapper). On one thin ext4 volume,
# alternates lvsnap (a run that creates one snapshot and prunes one) with snapper (create, then
# its number cleanup keeping one) and prints per-pair timings and medians. See BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; PAIRS=${2:-10}
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L 1G -T vg0/pool > /dev/null
lvcreate -q -y -V 512M -T vg0/pool -n data > /dev/null
lvcreate -q -y -V 512M -T vg0/pool -n snapdata > /dev/null
mkfs.ext4 -q /dev/vg0/snapdata
mkdir -p /mnt/snapdata /etc/snapper/configs /etc/default
# snapper finds the LVM names only through the /dev/mapper path.
mount /dev/mapper/vg0-snapdata /mnt/snapdata
echo 'SNAPPER_CONFIGS=""' > /etc/default/snapper
snapper --no-dbus -c thin create-config -f "lvm(ext4)" /mnt/snapdata
snapper --no-dbus -c thin set-config NUMBER_LIMIT=1 NUMBER_MIN_AGE=0
mkdir -p /etc/lvsnap
cat > $LVSNAP_CONFIG <<'TOML'
[settings]
timezone = "UTC"

[policy.data]
volumes = ["vg0/data"]
schedule = "* * * * *"
keep = { last = 1 }
TOML
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
at() { date -u -d "@$(( 1772409600 + $1 * 60 ))" +%Y-%m-%dT%H:%M:%SZ; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
"$LVSNAP" run --now "$(at 0)" > /dev/null
snapper --no-dbus -c thin create --cleanup-algorithm number
: > /tmp/l; : > /tmp/s
for i in $(seq 1 "$PAIRS"); do
  t=$(date +%s%N); "$LVSNAP" run --now "$(at $i)" > /dev/null; a=$(ms $t)
  t=$(date +%s%N)
  snapper --no-dbus -c thin create --cleanup-algorithm number
  snapper --no-dbus -c thin cleanup number
  b=$(ms $t)
  echo $a >> /tmp/l; echo $b >> /tmp/s
  echo "pair $i: lvsnap ${a} ms, snapper ${b} ms (create + cleanup)"
done
echo "snapshots left: lvsnap $(lvs --noheadings -o lv_name vg0 | grep -c data-lvsnap), snapper $(snapper --no-dbus -c thin list | grep -c number || true)"
echo "median per snapshot created and removed: lvsnap $(median < /tmp/l) ms, snapper $(median < /tmp/s) ms"
