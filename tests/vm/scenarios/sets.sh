# Snapshot sets on real LVM, over a thick ext4 vg0/a and a thin xfs vg0/b (both mounted):
# - five days of daily sets keep whole sets only (as `simulate` says); `catalog rebuild` after
#   deleting the catalog restores them; mount, restore and diff take a set;
# - rollback of a set: both origins unmounted → both equal their members; one mounted → both
#   deferred, pending together, merged together at the next activation;
# - a writer that keeps the same number in both volumes (the pre hook holds it, post releases
#   it): every set's two snapshots hold the same number;
# - freeze = true on this kernel (Debian 12's 6.1) is refused before anything is begun; it is
#   tested on a newer kernel in scenarios-newer-kernel/sets-freeze.sh;
# - a set whose second member does not fit in the VG: nothing of it is created, the other
#   policy's snapshot is taken, exit 1.
. "$(dirname "$LVSNAP_SCENARIO_LIB")/sets-lib.sh"

step "five days of daily sets (Friday to Tuesday), each day's content written to both volumes first"
# Two last and two weekly: the weekly rule keeps Sunday's set, the newest of the first week.
PAIR_KEEP="last = 2, weekly = 2" pair_policy ""
for d in $(seq 4 8); do
  echo "day $d" > /mnt/a/day; echo "day $d" > /mnt/b/day; sync
  out=$("$LVSNAP" run --now "$(utc_at $((d * 24)))" 2>&1) || fail "day $d: $out"
  echo "$out"
done
list=$("$LVSNAP" list); echo "$list"
expected=$("$LVSNAP" simulate --policy pair --from "$(utc_at 96)" --to "$(utc_at 193)" --json \
  | grep -o '"time":"[^"]*"' | cut -d'"' -f4 | sed 's/[-:]//g')
echo "simulate keeps: $(echo $expected)"
assert_eq "$(echo $expected)" "20260308T000000Z 20260309T000000Z 20260310T000000Z" "the sets simulate keeps"
for v in a b; do
  assert_eq "$(tagged_lvs | grep "^$v-lvsnap-" | sed "s/^$v-lvsnap-//" | tr '\n' ' ')" \
    "$(echo $expected | tr ' ' '\n' | tr '\n' ' ')" "the surviving members of $v"
done
for t in $expected; do
  assert_contains "$list" "set pair.$t (policy pair, 2 members, kept)"
  assert_contains "$(lv_field vg0/a-lvsnap-$t lv_tags)" "lvsnap-set=pair.$t"
  assert_contains "$(lv_field vg0/b-lvsnap-$t lv_tags)" "lvsnap-set=pair.$t"
done

step "catalog rebuild after deleting the catalog restores the sets"
before=$(set_ids)
rm -f /var/lib/lvsnap/catalog.db*
lvsnap catalog rebuild
assert_eq "$(set_ids)" "$before" "sets after rebuild"

newest=$(echo $expected | tr ' ' '\n' | tail -1)
step "mount, restore and diff take a set"
out=$("$LVSNAP" mount pair.$newest /mnt/set 2>&1) || fail "$out"; echo "$out"
assert_eq "$(cat /mnt/set/mnt/a/day) $(cat /mnt/set/mnt/b/day)" "day 8 day 8" "the members under the set's tree"
lvsnap umount pair.$newest
grep -q " /mnt/set/" /proc/mounts && fail "a member is still mounted under /mnt/set"
echo "changed" > /mnt/b/day; sync
out=$("$LVSNAP" restore pair.$newest /mnt/b/day --to /tmp/restored 2>&1) || fail "$out"; echo "$out"
assert_eq "$(cat /tmp/restored/day)" "day 8" "the file restored from the set's member of vg0/b"
out=$("$LVSNAP" diff pair.$newest 2>&1) || fail "$out"; echo "$out"
assert_contains "$out" "changes from vg0/a-lvsnap-$newest to the live vg0/a at /mnt/a:"
assert_contains "$out" "changes from vg0/b-lvsnap-$newest to the live vg0/b at /mnt/b:"
assert_contains "$out" "c day (size 6 → 8"

step "rollback of a set with both origins unmounted: each origin equals its member"
want_a=$(member_sums a-lvsnap-$newest); want_b=$(member_sums b-lvsnap-$newest)
echo "after the set" > /mnt/a/late; echo "after the set" > /mnt/b/late; rm /mnt/a/day; sync
umount /mnt/a /mnt/b
out=$("$LVSNAP" rollback pair.$newest --yes 2>&1) || fail "$out"
echo "$out"
assert_contains "$out" "rolled back: every member of set pair.$newest is merged"
assert_no_lv vg0/a-lvsnap-$newest; assert_no_lv vg0/b-lvsnap-$newest
mount /dev/vg0/a /mnt/a; mount /dev/vg0/b /mnt/b
assert_eq "$(tree_sums /mnt/a)" "$want_a" "vg0/a equals its member"
assert_eq "$(tree_sums /mnt/b)" "$want_b" "vg0/b equals its member"
guard=$(grep -o 'guard set pair\.[0-9TZ-]*' <<< "$out" | cut -d' ' -f3)
assert_contains "$("$LVSNAP" list)" "set $guard (policy pair, 2 members, kept)"

step "rollback of a set with one origin mounted: both deferred, pending together"
sleep 1
out=$("$LVSNAP" snapshot pair 2>&1) || fail "$out"; echo "$out"
target=$(grep -o 'created set pair\.[0-9TZ-]*' <<< "$out" | cut -d' ' -f3)
t=${target#pair.}
want_a=$(member_sums a-lvsnap-$t); want_b=$(member_sums b-lvsnap-$t)
echo scribble > /mnt/a/scribble; echo scribble > /mnt/b/scribble; sync
umount /mnt/b
out=$("$LVSNAP" rollback "$target" --yes 2>&1) || fail "$out"
echo "$out"
assert_contains "$out" "vg0/a in use: LVM defers its merge"
assert_contains "$out" "merge deferred for vg0/a, vg0/b: they merge together at their next activation"
assert_contains "$out" "lvsnap holds vg0/b open while it starts the merges"
assert_lv_exists vg0/a-lvsnap-$t
assert_lv_exists vg0/b-lvsnap-$t
assert_contains "$(lv_field vg0/b-lvsnap-$t lv_merging)" "merging" "the thin member is marked, not merged"
list=$("$LVSNAP" list); echo "$list"
assert_contains "$(grep "a-lvsnap-$t " <<< "$list")" "rollback pending"
assert_contains "$(grep "b-lvsnap-$t " <<< "$list")" "rollback pending"
umount /mnt/a
run lvchange -an vg0/a vg0/b
run lvchange -ay vg0/a vg0/b
for _ in $(seq 120); do lv_exists vg0/a-lvsnap-$t || lv_exists vg0/b-lvsnap-$t || break; sleep 0.5; done
assert_no_lv vg0/a-lvsnap-$t; assert_no_lv vg0/b-lvsnap-$t
mount /dev/vg0/a /mnt/a; mount /dev/vg0/b /mnt/b
assert_eq "$(tree_sums /mnt/a)" "$want_a" "vg0/a equals its member after the deferred merge"
assert_eq "$(tree_sums /mnt/b)" "$want_b" "vg0/b equals its member after the deferred merge"
status=$("$LVSNAP" status); echo "$status"
assert_not_contains "$status" "rollback  PENDING"

step "a writer keeps one number in both volumes; the hooks hold it while the set is taken"
for f in $(tagged_lvs); do lvremove -q -y vg0/$f > /dev/null; done
"$LVSNAP" list > /dev/null
start_writer
pair_policy "$hooks"
for i in 1 2 3; do sleep 1; lvsnap snapshot pair; done
kill -0 $writer || fail "the writer died"
check_sets 3
stop_writer

step "freeze = true on this kernel ($(uname -r)): refused before the pre hook, nothing created"
count=$(tagged_lvs | wc -l)
rm -f /tmp/pre-ran
pair_policy 'pre = ["touch", "/tmp/pre-ran"]
freeze = true'
sleep 1
rc=0; out=$("$LVSNAP" snapshot pair 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status"
assert_contains "$out" "freeze = true needs Linux 6.6 or later, and this is $(uname -r)"
assert_contains "$out" "hint: set freeze = false"
[ -e /tmp/pre-ran ] && fail "the pre hook ran for a set that was refused"
assert_eq "$(tagged_lvs | wc -l)" "$count" "snapshots after the refused set"
writable 2 || fail "an origin is not writable after the refused set"

step "a set whose second member does not fit: none of it is created, other policies go on"
run lvcreate -q -y -L 64M -n c vg0
run lvcreate -q -y -V 32M -T vg0/pool -n e
write_policy "[settings]
timezone = \"UTC\"

[policy.big]
volumes = [\"vg0/a\", \"vg0/c\"]
set = true
schedule = \"0 0 * * *\"
size = \"2G\"
max-thick-per-origin = 20
keep = { last = 3 }

[policy.thin]
volumes = [\"vg0/e\"]
schedule = \"0 0 * * *\"
keep = { last = 3 }"
before=$(tagged_lvs | tr '\n' ' ')
rc=0; out=$("$LVSNAP" run 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status"
assert_contains "$out" "big vg0/a: error: snapshot set failed: member vg0/c (the set's members before it take 2 GiB of vg0): volume group vg0 has"
assert_contains "$out" "thin vg0/e: create e-lvsnap-"
after=$(tagged_lvs | grep -v '^e-lvsnap-' | tr '\n' ' ')
assert_eq "$after" "$before" "snapshots besides the other policy's new one"
assert_eq "$(tagged_lvs | grep -c '^e-lvsnap-')" 1 "the other policy's snapshot"
