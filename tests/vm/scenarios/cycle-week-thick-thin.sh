# A simulated week of `lvsnap run`s every six hours (driven by --now) over a thick ext4 origin
# and a thin xfs origin, both mounted and written to: the snapshots are tagged, `list` shows
# them, and the set that survives is exactly what `lvsnap simulate` says for the same policy.
step "origins: thick ext4 vg0/home, thin xfs vg0/data in vg0/pool"
run lvcreate -q -y -L 256M -n home vg0
# No lazy inode-table initialisation: its background writes would fill (and invalidate) a thick
# snapshot within the hour, and this scenario is about retention, not overflow.
run mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/vg0/home
run lvcreate -q -y -L 1G -T vg0/pool
run lvcreate -q -y -V 512M -T vg0/pool -n data
make_fs xfs /dev/vg0/data
mkdir -p /mnt/home /mnt/data
mount /dev/vg0/home /mnt/home
mount /dev/vg0/data /mnt/data
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 0,12 * * *"
size = "32M"
keep = { last = 2, daily = 3, weekly = 2 }

[policy.data]
volumes = ["vg0/data"]
schedule = "0 0,12 * * *"
keep = { last = 2, daily = 3, weekly = 2 }'

# Every six hours, not every hour: the schedule is twice a day, and a run between its times
# only looks (about a second each under emulation).
step "28 runs, every six hours, 2026-03-02 to 2026-03-08"
for h in $(seq 0 6 167); do
  echo "hour $h" > /mnt/home/clock; echo "hour $h" > /mnt/data/clock
  out=$("$LVSNAP" run --now "$(utc_at $h)" 2>&1) || fail "run at hour $h: $out"
  if [ $((h % 12)) = 0 ]; then echo "$out"; fi
done

step "every snapshot lvsnap made carries its tags"
for lv in $(tagged_lvs); do
  tags=$(lv_field vg0/$lv lv_tags)
  assert_contains "$tags" "lvsnap-policy="
  assert_contains "$tags" "lvsnap-time="
done

step "list shows them, thick and thin"
lvsnap list
json=$("$LVSNAP" list --json)
assert_contains "$json" '"kind":"thick"'
assert_contains "$json" '"kind":"thin"'

step "the survivors equal simulate's answer"
for p in home data; do
  expected=$("$LVSNAP" simulate --policy $p --from "$(utc_at 0)" --to "$(utc_at 168)" --json \
    | grep -o '"time":"[^"]*"' | cut -d'"' -f4 | sed 's/[-:]//g' | sed "s/^/$p-lvsnap-/")
  actual=$(tagged_lvs | grep "^$p-lvsnap-")
  echo "$p: $(echo $actual)"
  assert_eq "$(echo $actual)" "$(echo $expected)" "surviving $p snapshots"
done
assert_eq "$(tagged_lvs | wc -l)" 10 "two groups of 5"
step "none became invalid or needed extending"
assert_not_contains "$json" '"state":"invalid"'

