#!/bin/bash
# replicate.sh LVSNAP ROUNDS — runs in the test VM. A 1 GiB thin volume with 512 MiB written;
# each round: the whole snapshot through `lvsnap send | lvsnap receive` into a thin pool on the
# second disk, against `dd bs=1M` of the snapshot device into a thin volume there (alternated,
# caches dropped before each); then 8 MiB written, a new snapshot, and the increment sent:
# wall time and bytes of data against the whole send. Prints each round and the medians.
set -euo pipefail
LVSNAP=$1; ROUNDS=${2:-3}
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
vgcreate -q -y vgb /dev/vdb > /dev/null
lvcreate -q -y -L 1200M -T vg0/pool > /dev/null
lvcreate -q -y -V 1G -T vg0/pool -n vol > /dev/null
lvcreate -q -y -L 3G -T vgb/replicas > /dev/null
dd if=/dev/urandom of=/dev/vg0/vol bs=1M count=512 oflag=direct status=none
mkdir -p /etc/lvsnap
cat > $LVSNAP_CONFIG <<'TOML'
[settings]
timezone = "UTC"

[policy.vol]
volumes = ["vg0/vol"]
schedule = "0 0 * * *"
keep = { last = 100 }
TOML
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
: > /tmp/full; : > /tmp/dd; : > /tmp/inc
for i in $(seq 1 "$ROUNDS"); do
  sleep 1
  "$LVSNAP" snapshot vol > /dev/null
  s=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep '^vol-lvsnap-' | sort | tail -1)
  lvcreate -q -y -V 1G -T vgb/replicas -n dd > /dev/null
  lvchange -q -ay -K "vg0/$s"
  # Alternate which goes first.
  for which in $( [ $((i % 2)) = 1 ] && echo "send dd" || echo "dd send" ); do
    cold; t0=$(date +%s%N)
    if [ $which = send ]; then
      "$LVSNAP" send "vg0/$s" 2> /tmp/sent | "$LVSNAP" receive --pool vgb/replicas > /dev/null
      full=$(ms $t0); full_bytes=$(grep -o '([0-9]* bytes)' /tmp/sent | tr -dc 0-9)
    else
      dd if="/dev/vg0/$s" of=/dev/vgb/dd bs=1M oflag=direct status=none
      d=$(ms $t0)
    fi
  done
  lvchange -q -an "vg0/$s"
  lvremove -q -y vgb/dd > /dev/null
  dd if=/dev/urandom of=/dev/vg0/vol bs=1M count=8 seek=$(( 600 + i * 8 )) oflag=direct status=none
  sleep 1
  "$LVSNAP" snapshot vol > /dev/null
  n=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep '^vol-lvsnap-' | sort | tail -1)
  cold; t0=$(date +%s%N)
  "$LVSNAP" send "vg0/$n" --base "$s" 2> /tmp/sent | "$LVSNAP" receive --pool vgb/replicas > /dev/null
  inc=$(ms $t0); inc_bytes=$(grep -o '([0-9]* bytes)' /tmp/sent | tr -dc 0-9)
  echo "round $i: whole send $full ms ($full_bytes bytes of data); dd $d ms; increment of 8 MiB written $inc ms ($inc_bytes bytes of data)"
  echo $full >> /tmp/full; echo $d >> /tmp/dd; echo $inc >> /tmp/inc
  lvremove -q -y vgb -S 'lv_tags=lvsnap-replica' > /dev/null
done
f=$(median < /tmp/full); d=$(median < /tmp/dd); n=$(median < /tmp/inc)
echo "median whole send ${f} ms; median dd ${d} ms; ratio $(awk -v a=$f -v b=$d 'BEGIN {printf "%.2f", a / b}')"
echo "median increment ${n} ms: $(awk -v a=$f -v b=$n 'BEGIN {printf "%.1f", a / b}')x faster than whole; bytes of data $(awk -v a=$full_bytes -v b=$inc_bytes 'BEGIN {printf "%.0f", a / b}')x fewer"
