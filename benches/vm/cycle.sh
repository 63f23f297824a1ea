#!/bin/bash
# cycle.sh LVSNAP PAIRS — runs in the test VM. Alternates `lvsnap run` (one snapshot created,
# one pruned) with the same LVM commands run bare, for a thick and a thin origin, and prints
# per-pair timings and the median ratio; then what a command costs before it does any work
# (start-up, the policy file, the catalog), medians of PAIRS. See BENCHMARKS.md.
set -euo pipefail
LVSNAP=$1; PAIRS=${2:-10}
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L 256M -n home vg0 > /dev/null
lvcreate -q -y -L 1G -T vg0/pool > /dev/null
lvcreate -q -y -V 512M -T vg0/pool -n data > /dev/null
mkdir -p /etc/lvsnap
cat > $LVSNAP_CONFIG <<'TOML'
[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "* * * * *"
size = "8M"
keep = { last = 1 }

[policy.data]
volumes = ["vg0/data"]
schedule = "* * * * *"
keep = { last = 1 }
TOML
LVS_ARGS=(-a --reportformat json --units b --nosuffix --config 'report { time_format = "%s" }'
  -o lv_uuid,lv_name,vg_name,origin,pool_lv,lv_time,lv_attr,lv_size,data_percent,snap_percent,metadata_percent,lv_tags,lv_merging,lv_skip_activation,lv_snapshot_invalid,lv_device_open,lv_active,lv_layout,lv_role,vg_free,vg_extent_size,vg_size)
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
at() { date -u -d "@$(( 1772409600 + $1 * 60 ))" +%Y-%m-%dT%H:%M:%SZ; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for kind in thick thin; do
  if [ $kind = thick ]; then policy=home; origin=home; create=(--snapshot --extents 2); else policy=data; origin=data; create=(--snapshot); fi
  # Prime both: one lvsnap snapshot and one bare one exist, so every step creates one and removes one.
  "$LVSNAP" run --policy $policy --now "$(at 0)" > /dev/null
  lvcreate -q "${create[@]}" --name bare-$kind-0 --addtag bench vg0/$origin > /dev/null
  : > /tmp/$kind.lvsnap; : > /tmp/$kind.bare; : > /tmp/$kind.ratio
  for i in $(seq 1 "$PAIRS"); do
    t=$(date +%s%N)
    out=$("$LVSNAP" run --policy $policy --now "$(at $i)")
    a=$(ms $t)
    case "$out" in *"create "*"1 kept, 1 removed"*) ;; *) echo "unexpected run output: $out" >&2; exit 1 ;; esac
    t=$(date +%s%N)
    lvs "${LVS_ARGS[@]}" > /dev/null
    lvcreate "${create[@]}" --name bare-$kind-$i --addtag bench --addtag bench-policy=bench --addtag bench-time=$i vg0/$origin > /dev/null
    lvremove --yes vg0/bare-$kind-$((i - 1)) > /dev/null
    b=$(ms $t)
    echo $a >> /tmp/$kind.lvsnap; echo $b >> /tmp/$kind.bare
    awk -v a=$a -v b=$b 'BEGIN {printf "%.3f\n", a / b}' >> /tmp/$kind.ratio
    echo "$kind pair $i: lvsnap run ${a} ms, bare commands ${b} ms"
  done
  echo "$kind: median lvsnap run $(median < /tmp/$kind.lvsnap) ms, bare $(median < /tmp/$kind.bare) ms, median ratio $(median < /tmp/$kind.ratio)"
done
echo "lvm commands per run (catalog event log, last thin run): $("$LVSNAP" catalog events --limit 3 | wc -l) (lvs, lvcreate, lvremove)"

# Start-up: each command PAIRS times, alternated, nothing due (the last run's minute again).
now=$(at "$PAIRS")
steps=(true version check lvs plan run)
for _ in $(seq 1 "$PAIRS"); do
  for s in "${steps[@]}"; do
    t=$(date +%s%N)
    case $s in
      true) /bin/true ;;
      version) "$LVSNAP" --version > /dev/null ;;
      check) "$LVSNAP" config check > /dev/null ;;
      lvs) lvs "${LVS_ARGS[@]}" > /dev/null ;;
      plan) "$LVSNAP" plan --now "$now" > /dev/null ;;
      run) "$LVSNAP" run --now "$now" > /tmp/noop.out ;;
    esac
    ms $t >> /tmp/start.$s
  done
done
! grep -q "create " /tmp/noop.out || { echo "the no-op run did something: $(cat /tmp/noop.out)" >&2; exit 1; }
for s in "${steps[@]}"; do echo "start-up $s: median $(median < /tmp/start.$s) ms"; done
