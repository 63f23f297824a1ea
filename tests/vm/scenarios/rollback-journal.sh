# Rollback keeps its undo.
# - Thick: a snapshot whose copy-on-write area is ~80% full, policy size 8 MiB. The guard is
#   sized to what the merge writes (not 8 MiB), survives the merge valid, and `rollback GUARD`
#   brings back the state from before the rollback.
# - Thin, swapping in a snapshot an earlier rollback detached: lvsnap is killed with SIGKILL
#   before each step of the swap in turn. Every time, the next `lvsnap run` or
#   `lvsnap rollback --resume` leaves a valid vg0/data holding either the old content (killed
#   before anything changed) or the new one, and says which.
run lvcreate -q -y -L 64M -n home vg0
run lvcreate -q -y -L 256M -T vg0/pool
run lvcreate -q -y -V 64M -T vg0/pool -n data
make_fs ext4 /dev/vg0/home; make_fs ext4 /dev/vg0/data
mkdir -p /mnt/home /mnt/data /mnt/peek
for v in home data; do
  mount /dev/vg0/$v /mnt/$v
  echo "first state" > /mnt/$v/state
  dd if=/dev/urandom of=/mnt/$v/blob bs=1M count=7 status=none
done
sync
write_policy '[settings]
timezone = "UTC"
tool-path = ["/usr/local/sbin"]

[policy.home]
volumes = ["vg0/home"]
schedule = "0 0 1 1 *"
size = "8M"
invalid = "remove"
keep = { last = 10 }

[policy.data]
volumes = ["vg0/data"]
schedule = "0 0 1 1 *"
keep = { last = 10 }'
newest() { tagged_lvs | grep "^$1-lvsnap-" | sort | tail -1; }

step "thick: the guard holds everything the merge writes"
lvsnap snapshot home > /dev/null
target=$(newest home)
echo "second state" > /mnt/home/state; sync
# Rewrite blocks that existed when the snapshot was taken, 256 KiB at a time (the journal's
# writes count too), until its 8 MiB copy-on-write area is about 80% full.
for i in $(seq 0 27); do
  dd if=/dev/urandom of=/mnt/home/blob bs=256K count=1 seek=$i conv=notrunc,fsync status=none
  pct=$(lv_field vg0/$target snap_percent)
  awk -v p="$pct" 'BEGIN { exit !(p >= 75) }' && break
done
echo "copy-on-write use of $target: $pct%"
awk -v p="$pct" 'BEGIN { exit !(p >= 75 && p < 90) }' || fail "expected ~80% use, got $pct%"
before=$(tree_sums /mnt/home)
umount /mnt/home
sleep 1
out=$("$LVSNAP" rollback $target --yes); echo "$out"
assert_contains "$out" "(at least "
assert_contains "$out" "rolled back: vg0/home now holds what $target held"
guard=$(newest home)
size=$(lv_field vg0/$guard lv_size)
[ "$size" -gt $((8 << 20)) ] || fail "the guard is $size bytes, no larger than the policy's 8 MiB"
attr=$(lv_field vg0/$guard lv_attr)
case "$attr" in ????I*) fail "the guard overflowed during the merge ($attr)";; esac
echo "guard $guard: $size bytes, $(lv_field vg0/$guard snap_percent)% used after the merge"
mount /dev/vg0/home /mnt/home
assert_eq "$(cat /mnt/home/state)" "first state" "the rolled-back origin"
umount /mnt/home
lvsnap rollback $guard --yes > /dev/null
mount /dev/vg0/home /mnt/home
assert_eq "$(tree_sums /mnt/home)" "$before" "rollback to the guard brings back the state from before"

# The LVM tools the swap runs, through wrappers that count calls and SIGKILL lvsnap (their
# parent) instead of running the call numbered $(cat /run/kill-at) (0: none).
mkdir -p /usr/local/sbin
for tool in lvrename lvchange; do
  printf '#!/bin/bash\nn=$(( $(cat /run/calls) + 1 )); echo $n > /run/calls\nif [ "$n" = "$(cat /run/kill-at)" ]; then kill -9 $PPID; exit 1; fi\nexec /usr/sbin/%s "$@"\n' $tool > /usr/local/sbin/$tool
  chmod 755 /usr/local/sbin/$tool
done
echo 0 > /run/calls; echo 0 > /run/kill-at
content() { mount -o ro /dev/vg0/data /mnt/peek; cat /mnt/peek/state; umount /mnt/peek; }
umount /mnt/data

# A snapshot that a rollback detached: the guard of a thin rollback (the merge detaches the
# origin's other snapshots). It holds "detached"; vg0/data goes back to "first state".
lvsnap snapshot data > /dev/null
s=$(newest data)
mount /dev/vg0/data /mnt/data; echo "detached" > /mnt/data/state; umount /mnt/data
sleep 1
"$LVSNAP" rollback $s --yes > /dev/null
target=$(newest data); new="detached"

# Eight steps: rename the origin to the guard, tag it, rename the snapshot to the origin, untag
# it, clear its activation-skip flag, activate it, deactivate the guard, set its flag. Each
# finished rollback leaves a guard holding what vg0/data held before, which is the next
# iteration's target: the two contents alternate, so old and new always differ.
for k in 1 2 3 4 5 6 7 8; do
  step "thin swap killed before step $k"
  old=$(content)
  [ "$old" != "$new" ] || fail "the target holds what vg0/data holds: the test proves nothing"
  echo 0 > /run/calls; echo $k > /run/kill-at
  got=0; "$LVSNAP" rollback $target --yes > /tmp/swap.out 2>&1 || got=$?
  cat /tmp/swap.out
  assert_eq "$got" 137 "lvsnap was killed"
  echo 0 > /run/kill-at
  if [ $((k % 2)) = 1 ]; then out=$("$LVSNAP" rollback --resume 2>&1); else out=$("$LVSNAP" run 2>&1); fi
  echo "$out"
  assert_lv_exists vg0/data
  if [ $k = 1 ]; then
    assert_contains "$out" "interrupted before it changed anything: vg0/data holds what it held before"
    assert_eq "$(content)" "$old" "vg0/data after the resume"
  else
    assert_contains "$out" "finished the interrupted rollback of vg0/data to $target"
    assert_eq "$(content)" "$new" "vg0/data after the resume"
    guard=$(echo "$out" | sed -n 's/.*; \(data-lvsnap-[0-9TZ-]*\) keeps the state from before.*/\1/p')
    [ -n "$guard" ] || fail "the resume did not name the new guard"
    assert_lv_exists vg0/$guard
    assert_eq "$(lv_field vg0/$guard lv_active)" "" "the guard is inactive"
    assert_eq "$(lv_field vg0/$guard lv_skip_activation)" "skipactivation" "the guard is skipped at boot"
    target=$guard; new=$old
  fi
  assert_eq "$(lv_field vg0/data lv_tags)" "" "vg0/data carries no lvsnap tag"
  assert_contains "$("$LVSNAP" rollback --resume)" "no interrupted rollback"
  sleep 1
done
rm /usr/local/sbin/lvrename /usr/local/sbin/lvchange
list=$("$LVSNAP" list); echo "$list"
assert_not_contains "$list" "unmanaged"
