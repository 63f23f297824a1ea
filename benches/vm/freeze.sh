#!/bin/bash
# freeze.sh LVSNAP ROUNDS — runs in the test VM. The freeze window of a two-member snapshot set
# (a thick ext4 and a thin xfs origin, both mounted): `lvsnap snapshot` of a `freeze = true`
# set reports how long the filesystems were frozen (first freeze to last thaw); each round
# also times the two members' lvcreates run bare, back to back, and removes everything again.
# Prints each round and the medians. See BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; ROUNDS=${2:-7}
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L 64M -n a vg0 > /dev/null
lvcreate -q -y -L 256M -T vg0/pool > /dev/null
lvcreate -q -y -V 320M -T vg0/pool -n b > /dev/null
mkfs.ext4 -q -F /dev/vg0/a; mkfs.xfs -q -f /dev/vg0/b
mkdir -p /mnt/a /mnt/b /etc/lvsnap
mount /dev/vg0/a /mnt/a; mount /dev/vg0/b /mnt/b
cat > $LVSNAP_CONFIG <<'TOML'
[settings]
timezone = "UTC"

[policy.pair]
volumes = ["vg0/a", "vg0/b"]
set = true
freeze = true
schedule = "0 0 * * *"
size = "16M"
keep = { last = 100 }
max-thick-per-origin = 100
TOML
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: > /tmp/window; : > /tmp/bare
for i in $(seq 1 "$ROUNDS"); do
  sleep 1
  out=$("$LVSNAP" snapshot pair)
  w=$(grep -o 'frozen [0-9]* ms' <<< "$out" | cut -d' ' -f2)
  t0=$(date +%s%N)
  lvcreate -q -y -s -L 16M -n bare-a vg0/a > /dev/null
  lvcreate -q -y -s -n bare-b vg0/b > /dev/null
  b=$(( ($(date +%s%N) - t0) / 1000000 ))
  lvremove -q -y vg0/bare-a vg0/bare-b > /dev/null
  for lv in $(lvs --noheadings -o lv_name vg0 | grep -- '-lvsnap-'); do lvremove -q -y vg0/$lv > /dev/null; done
  "$LVSNAP" list > /dev/null
  echo "round $i: frozen $w ms; bare lvcreate a + b $b ms"
  echo $w >> /tmp/window; echo $b >> /tmp/bare
done
w=$(median < /tmp/window); b=$(median < /tmp/bare)
echo "median freeze window ${w} ms; median bare lvcreate pair ${b} ms; ratio $(awk -v w=$w -v b=$b 'BEGIN {printf "%.2f", w / b}')"
