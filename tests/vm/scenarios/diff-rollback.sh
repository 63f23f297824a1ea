# diff reports exactly a scripted change; rollback of an unmounted origin (thick and thin) makes
# it equal to the snapshot and leaves a guard snapshot that undoes the rollback; rollback of a
# mounted origin is deferred, shown as pending, holds pruning back, and completes after unmount
# and reactivation; and every restore command refuses a snapshot lvsnap did not create.
run lvcreate -q -y -L 128M -n home vg0
run lvcreate -q -y -L 512M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n data
make_fs ext4 /dev/vg0/home; make_fs xfs /dev/vg0/data
for v in home data; do
  mkdir -p /mnt/$v && mount /dev/vg0/$v /mnt/$v
  mkdir -p /mnt/$v/etc /mnt/$v/many
  echo "root:x:0:0" > /mnt/$v/etc/passwd
  echo "keep me" > /mnt/$v/etc/hosts
  for i in $(seq 10); do echo "file $i" > /mnt/$v/many/f$i; done
done
sync
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "32M"
keep = { last = 10 }

[policy.data]
volumes = ["vg0/data"]
schedule = "0 * * * *"
keep = { last = 10 }'

# snapshot_sums SNAPSHOT: sums of a snapshot, read through lvsnap mount.
snapshot_sums() {
  "$LVSNAP" mount "$1" /mnt/peek > /dev/null
  tree_sums /mnt/peek
  "$LVSNAP" umount "$1" > /dev/null
}
newest() { tagged_lvs | grep "^$1-lvsnap-" | sort | tail -1; }

step "diff names exactly the added, removed and changed files"
lvsnap snapshot home
s1=$(newest home)
echo new > /mnt/home/added.txt
rm /mnt/home/etc/passwd
echo "changed" >> /mnt/home/many/f7
chmod 600 /mnt/home/many/f2
sync
out=$("$LVSNAP" diff $s1); echo "$out"
assert_eq "$(grep -v '^changes from' <<< "$out")" "+ added.txt
- etc/passwd
c many/f2 (mode 644 → 600)
c many/f7 (size 7 → 15)
1 added, 1 removed, 2 changed"
sleep 1; lvsnap snapshot home
s2=$(newest home)
json=$("$LVSNAP" diff $s1 $s2 --json); echo "$json"
assert_contains "$json" '"added":["added.txt"],"removed":["etc/passwd"]'
assert_contains "$json" '{"path":"many/f2","what":"mode 644 → 600"},{"path":"many/f7","what":"size 7 → 15"}'
assert_eq "$("$LVSNAP" diff $s2 | tail -1)" "0 added, 0 removed, 0 changed" "nothing changed since $s2"

for v in home data; do
  step "rollback of the unmounted $v ($(lv_field vg0/$v segtype))"
  if [ $v = data ]; then
    lvsnap snapshot data
    echo gone > /mnt/data/added.txt; rm /mnt/data/etc/hosts; sync
  fi
  target=$(tagged_lvs | grep "^$v-lvsnap-" | sort | head -1)
  want=$(snapshot_sums $target)
  before=$(tree_sums /mnt/$v)
  umount /mnt/$v
  out=$("$LVSNAP" rollback $target --yes); echo "$out"
  assert_contains "$out" "a guard snapshot of vg0/$v as it is now is taken first"
  assert_contains "$out" "rolled back: vg0/$v now holds what $target held"
  assert_no_lv vg0/$target
  guard=$(newest $v)
  assert_contains "$("$LVSNAP" list)" "guard before rollback to $target"
  mount /dev/vg0/$v /mnt/$v
  assert_eq "$(tree_sums /mnt/$v)" "$want" "the origin equals the snapshot"

  step "rolling back to the guard undoes the rollback"
  umount /mnt/$v
  lvsnap rollback $guard --yes
  mount /dev/vg0/$v /mnt/$v
  assert_eq "$(tree_sums /mnt/$v)" "$before" "the origin is as before the first rollback"
done

step "rollback of a mounted origin is deferred and shown as pending"
echo "after" > /mnt/home/late.txt; sync
sleep 1; lvsnap snapshot home
s3=$(newest home)
want=$(snapshot_sums $s3)
echo "even later" > /mnt/home/later.txt; sync
out=$("$LVSNAP" rollback $s3 --yes); echo "$out"
assert_contains "$out" "vg0/home is in use (mounted at /mnt/home): LVM will defer the merge"
assert_contains "$out" "merge deferred"
list=$("$LVSNAP" list); echo "$list"
assert_contains "$(grep "^$s3 " <<< "$list")" "merging"
assert_contains "$list" "rollback pending: merges into vg0/home at its next activation"
assert_contains "$list" "PENDING until vg0/home is next activated"
assert_contains "$("$LVSNAP" status)" "rollback  PENDING: $s3 merges into vg0/home"
out=$("$LVSNAP" prune --force 2>&1) || true; echo "$out"
assert_contains "$out" "a merge into vg0/home is pending"
lv_exists vg0/$s3 || fail "the merging snapshot went before its merge"

step "unmount and reactivate: the merge completes"
umount /mnt/home
run lvchange -an vg0/home
run lvchange -ay vg0/home
for _ in $(seq 120); do lv_exists vg0/$s3 || break; sleep 0.5; done
assert_no_lv vg0/$s3
out=$("$LVSNAP" list 2>&1); echo "$out"
assert_not_contains "$out" "PENDING"
assert_contains "$("$LVSNAP" catalog history)" "rollback  vg0/home to $s3"
assert_contains "$("$LVSNAP" catalog history | grep "to $s3")" "completed"
mount /dev/vg0/home /mnt/home
assert_eq "$(tree_sums /mnt/home)" "$want" "the origin equals the merged snapshot"

step "a mounted thin origin: deferred, then merged at activation"
lvsnap snapshot data
s4=$(newest data)
want=$(snapshot_sums $s4)
echo "scribble" > /mnt/data/scribble; sync
out=$("$LVSNAP" rollback $s4 --yes); echo "$out"
assert_contains "$out" "merge deferred"
umount /mnt/data
run lvchange -an vg0/data
run lvchange -ay vg0/data
assert_no_lv vg0/$s4
mount /dev/vg0/data /mnt/data
assert_eq "$(tree_sums /mnt/data)" "$want" "the thin origin equals the merged snapshot"
"$LVSNAP" list > /dev/null
assert_contains "$("$LVSNAP" catalog history | grep "to $s4")" "completed"

step "every restore command refuses a snapshot lvsnap did not create"
run lvcreate -q -y -s -L 16M -n manual vg0/home
for cmd in "mount manual /mnt/x" "restore manual etc --to /mnt/x" "diff manual" "rollback manual --yes"; do
  rc=0; out=$("$LVSNAP" $cmd 2>&1) || rc=$?
  echo "lvsnap $cmd -> $rc: $out"
  assert_eq "$rc" 2 "exit status of lvsnap $cmd"
  assert_contains "$out" "vg0/manual is a snapshot lvsnap did not create"
done
assert_lv_exists vg0/manual
[ -e /mnt/x ] && fail "a refused command created /mnt/x"
true
