#!/bin/bash
# prune.sh LVSNAP PAIRS — runs in the test VM. `lvsnap prune` removing 20 snapshots of one
# origin (one lvremove with every name) against 20 bare `lvremove --yes` in sequence, for a
# thick and a thin origin, alternated; prints each pair and the median ratio. BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; PAIRS=${2:-3}; N=20
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L 64M -n home vg0 > /dev/null
lvcreate -q -y -L 256M -T vg0/pool > /dev/null
lvcreate -q -y -V 64M -T vg0/pool -n data > /dev/null
mkdir -p /etc/lvsnap
policy() {  # KEEP
  cat > $LVSNAP_CONFIG << TOML
[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "* * * * *"
size = "4M"
keep = { last = $1 }
max-thick-per-origin = $(( N + 1 ))
max-remove-percent = 100

[policy.data]
volumes = ["vg0/data"]
schedule = "* * * * *"
keep = { last = $1 }
max-remove-percent = 100
TOML
}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
at() { date -u -d "@$(( 1772409600 + $1 * 60 ))" +%Y-%m-%dT%H:%M:%SZ; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

minute=0
for kind in thick thin; do
  if [ $kind = thick ]; then p=home; create=(--snapshot --extents 1); else p=data; create=(--snapshot); fi
  : > /tmp/$kind.lvsnap; : > /tmp/$kind.bare; : > /tmp/$kind.ratio
  for i in $(seq 1 "$PAIRS"); do
    # N + 1 snapshots by lvsnap (one a minute, by --now), then keep rules that keep one.
    policy $(( N + 1 ))
    for _ in $(seq 0 $N); do
      minute=$(( minute + 1 ))
      "$LVSNAP" run --policy $p --now "$(at $minute)" > /dev/null
    done
    policy 1
    t=$(date +%s%N)
    out=$("$LVSNAP" prune --policy $p)
    a=$(ms $t)
    case "$out" in *"1 kept, $N removed"*) ;; *) echo "unexpected prune output: $out" >&2; exit 1 ;; esac
    for j in $(seq 1 $N); do lvcreate -q "${create[@]}" --name bare-$j vg0/$p > /dev/null; done
    t=$(date +%s%N)
    for j in $(seq 1 $N); do lvremove --yes vg0/bare-$j > /dev/null; done
    b=$(ms $t)
    echo $a >> /tmp/$kind.lvsnap; echo $b >> /tmp/$kind.bare
    awk -v a=$a -v b=$b 'BEGIN {printf "%.3f\n", a / b}' >> /tmp/$kind.ratio
    echo "$kind pair $i: lvsnap prune of $N ${a} ms, $N bare lvremoves ${b} ms"
  done
  echo "$kind: median lvsnap prune $(median < /tmp/$kind.lvsnap) ms, bare $(median < /tmp/$kind.bare) ms, median ratio $(median < /tmp/$kind.ratio)"
done
echo "lvremove commands in the last prune (catalog event log):"
"$LVSNAP" catalog events --limit 3 | grep lvremove | cut -c1-160
