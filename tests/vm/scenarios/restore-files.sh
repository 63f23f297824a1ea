# Deleted and corrupted files on ext4 and xfs origins, thick and thin, restored from a snapshot
# and from a backup (rsync and archive engines): byte-identical, with owners, modes, times,
# ACLs, xattrs and hard links; never over an existing file without --force; --dry-run changes
# nothing; --in-place puts files back into the live volume after a guard snapshot.
run lvcreate -q -y -L 128M -n home vg0
run lvcreate -q -y -L 320M -n srv vg0
run lvcreate -q -y -L 800M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n data
run lvcreate -q -y -V 128M -T vg0/pool -n mail
make_fs ext4 /dev/vg0/home; make_fs xfs /dev/vg0/srv; make_fs xfs /dev/vg0/data; make_fs ext4 /dev/vg0/mail
make_fs ext4 /dev/vdb
mkdir -p /mnt/backup && mount /dev/vdb /mnt/backup
for v in home srv data mail; do mkdir -p /mnt/$v && mount /dev/vg0/$v /mnt/$v; done

# same_paths A B PATH...: rsync finds nothing to change between A/PATH and B/PATH (checksums,
# owners, modes, times, ACLs, xattrs, hard links).
same_paths() {
  local a=$1 b=$2 p diff; shift 2
  for p in "$@"; do
    diff=$(rsync -nrlptgoDHAXc --numeric-ids -i "$a/$p" "$(dirname "$b/$p")/")
    [ -z "$diff" ] || fail "$b/$p differs from $a/$p:
$diff"
  done
}

for v in home srv data mail; do populate_tree /mnt/$v; done
sync
policy() {
  cat <<EOF
[policy.$1]
volumes = ["vg0/$1"]
schedule = "0 * * * *"
size = "32M"
keep = { last = 5 }
[policy.$1.backup]
schedule = "0 2 * * *"
engine = "$2"
target = "/mnt/backup"
keep = { last = 5 }
EOF
}
write_policy "$(printf '[settings]\ntimezone = "UTC"\n\n'; policy home rsync; policy mail archive; policy srv archive; policy data rsync)"
lvsnap config check > /dev/null

for spec in home:ext4:rsync mail:ext4:archive srv:xfs:archive data:xfs:rsync; do
  IFS=: read -r v fs engine <<< "$spec"
  step "$v ($fs, $(lv_field vg0/$v segtype), backup by $engine)"
  snap=$("$LVSNAP" snapshot $v | sed -n 's/.* created //p')
  out=$("$LVSNAP" backup $v); echo "$out"
  gen=$(echo "$out" | sed -n 's/.* wrote \([0-9TZ]*\) from .*/\1/p')
  if [ $v = home ]; then
    # This guest runs without SELinux: mount(8) leaves the label out, lvsnap says so.
    out=$(lvsnap mount $snap /mnt/check-$v --context system_u:object_r:container_file_t:s0 2>&1); echo "$out"
    assert_contains "$out" "SELinux is not enabled on this host: the label system_u:object_r:container_file_t:s0 has no effect"
  else
    lvsnap mount $snap /mnt/check-$v
  fi

  step "$v: the damage"
  rm /mnt/$v/etc/passwd
  printf 'garbage' | dd of=/mnt/$v/data/blob bs=1 seek=100 conv=notrunc 2> /dev/null
  rm /mnt/$v/many/f3
  sync

  step "$v: restore from the snapshot and from the backup"
  for src in $snap vg0/$v@$gen; do
    dest=/mnt/backup/restore/$v-${src##*@}
    out=$("$LVSNAP" restore $src etc data many --to $dest); echo "$out" | tail -1
    assert_contains "$out" "restored from "
    same_paths /mnt/check-$v $dest etc data many
    assert_eq "$(stat -c %h $dest/data/blob-hardlink)" 2 "hard link restored as a hard link"
    assert_eq "$(stat -c %i $dest/data/blob)" "$(stat -c %i $dest/data/blob-hardlink)" "one inode"
    assert_eq "$(getfattr --only-values -n user.origin $dest/data/blob 2> /dev/null)" lvsnap "xattr"
    assert_contains "$(getfacl -n $dest/etc/shadow 2> /dev/null)" "user:1234:rw-" "ACL"
    assert_eq "$(stat -c %Y $dest/etc/passwd)" "$(date -d '2020-02-29 12:34:56' +%s)" "mtime"
    assert_eq "$(stat -c %u:%g:%a $dest/data)" "1234:5678:2750" "owner and mode of a directory"
    [ "$(du -k $dest/data/sparse | cut -f1)" -lt 1024 ] || fail "sparse file restored dense"
  done

  step "$v: an existing file is never overwritten without --force"
  dest=/mnt/backup/restore/$v-$snap
  echo "edited locally" > $dest/etc/passwd
  out=$("$LVSNAP" restore $snap etc/passwd --to $dest) && fail "restore overwrote without --force"
  echo "$out"
  assert_contains "$out" "refused: 1 existing path(s) in the way would be replaced; pass --force"
  assert_eq "$(cat $dest/etc/passwd)" "edited locally" "the refused restore changed the file"

  step "$v: --dry-run changes nothing"
  out=$("$LVSNAP" restore $snap etc/passwd --to $dest --force --dry-run); echo "$out"
  assert_contains "$out" "would restore from vg0/$snap"
  assert_contains "$out" "etc/passwd  (replaces a file in the way)"
  assert_eq "$(cat $dest/etc/passwd)" "edited locally" "a dry run changed the file"
  "$LVSNAP" restore $snap etc --to /mnt/backup/restore/$v-dry --dry-run > /dev/null
  [ -e /mnt/backup/restore/$v-dry ] && fail "a dry run created the destination"
  lvsnap restore $snap etc/passwd --to $dest --force > /dev/null
  same_paths /mnt/check-$v $dest etc/passwd

  step "$v: --in-place puts the files back into the live volume, after a guard snapshot"
  out=$("$LVSNAP" restore $snap /mnt/$v/etc/passwd data many/f3 --in-place --yes); echo "$out"
  assert_contains "$out" "guard snapshot vg0/$v-lvsnap-"
  same_paths /mnt/check-$v /mnt/$v etc/passwd data many/f3
  assert_eq "$(stat -c %h /mnt/$v/data/blob)" 2 "the live blob and its hard link are one file again"
  lvsnap umount $snap
  assert_not_contains "$(cat /proc/mounts)" "/mnt/check-$v"
done

step "history in the catalog and in list"
hist=$("$LVSNAP" catalog history); echo "$hist"
assert_eq "$(grep -c ' restore ' <<< "$hist")" 16 "every restore recorded (4 per volume)"
assert_contains "$hist" "restore   vg0/srv@"
assert_contains "$("$LVSNAP" list)" "recent restores and rollbacks"
