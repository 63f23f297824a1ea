# Backups of thick and thin origins with ext4 and xfs, by rsync and archive: each backup equals
# the snapshot it was read from (content, owners, modes, times, ACLs, xattrs, hard links), the
# manifest equals a direct sha256sum of the snapshot, lvsnap mounts only the snapshot and only
# read-only, rsync generations share unchanged files and are pruned by their keep rules, and
# verify names every damaged file.
run lvcreate -q -y -L 192M -n home vg0
run lvcreate -q -y -L 320M -n srv vg0
run lvcreate -q -y -L 640M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n data
run lvcreate -q -y -V 320M -T vg0/pool -n mail
run lvcreate -q -y -L 64M -n cmd vg0
make_fs ext4 /dev/vg0/home; make_fs xfs /dev/vg0/srv
make_fs xfs /dev/vg0/data; make_fs ext4 /dev/vg0/mail; make_fs ext4 /dev/vg0/cmd
make_fs ext4 /dev/vdb
mkdir -p /mnt/backup && run mount /dev/vdb /mnt/backup
for v in home srv data mail cmd; do mkdir -p /mnt/$v && mount /dev/vg0/$v /mnt/$v; done

# same_tree A B: rsync finds nothing to change between A and B (checksums, owners, modes,
# times, ACLs, xattrs, hard links, specials), tmp/ excluded; and sha256sum of every file agrees.
same_tree() {
  local diff
  diff=$(rsync -nrlptgoDHAXc --numeric-ids --delete -i --exclude=/tmp "$1/" "$2/")
  [ -z "$diff" ] || fail "$2 differs from $1:
$diff"
  assert_eq "$(tree_sums "$2" tmp)" "$(tree_sums "$1" tmp)" "sha256sum of every file"
}

# manifest_sums MANIFEST: the manifest's files as sha256sum would print them.
manifest_sums() { awk '$1 == "f" {print $7 "  ./" $10}' "$1" | sort -k2; }

# mount_snapshot VG/LV DIR: mount a snapshot ourselves, read-only, activating a thin one.
mount_snapshot() {
  [ -n "$(lv_field "$1" lv_active)" ] || lvchange -ay -K "$1"
  mkdir -p "$2"
  mount -t "$3" -o "$(snapshot_mount_opts "$3")" "/dev/$1" "$2"
}

for v in home srv data mail cmd; do populate_tree /mnt/$v; done
sync
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "64M"
keep = { last = 5 }
[policy.home.backup]
schedule = "0 2 * * *"
engine = "rsync"
target = "/mnt/backup/rsync"
keep = { last = 2 }
exclude = ["tmp"]

[policy.data]
volumes = ["vg0/data"]
schedule = "0 * * * *"
keep = { last = 5 }
[policy.data.backup]
schedule = "0 2 * * *"
engine = "rsync"
target = "/mnt/backup/rsync"
keep = { last = 5 }
exclude = ["tmp"]

[policy.srv]
volumes = ["vg0/srv"]
schedule = "0 * * * *"
size = "64M"
keep = { last = 5 }
[policy.srv.backup]
schedule = "0 2 * * *"
engine = "archive"
target = "/mnt/backup/archive"
keep = { last = 5 }
exclude = ["tmp"]

[policy.mail]
volumes = ["vg0/mail"]
schedule = "0 * * * *"
keep = { last = 5 }
[policy.mail.backup]
schedule = "0 2 * * *"
engine = "archive"
target = "/mnt/backup/archive"
keep = { last = 5 }
exclude = ["tmp"]

[policy.cmd]
volumes = ["vg0/cmd"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 5 }
[policy.cmd.backup]
schedule = "0 2 * * *"
engine = "command"
command = ["sh", "-c", "grep \" $1 \" /proc/mounts > /mnt/backup/cmd-mountline; cp -a \"$1/.\" /mnt/backup/cmd-copy", "sh", "{mount}"]
source = "fresh"
target = "/mnt/backup/command"
keep = { last = 2 }'
lvsnap config check

step "snapshots taken while the origins are being written"
for v in home srv data mail; do
  (while :; do date +%s%N >> /mnt/$v/data/writer.log; done) &
  writers="${writers:-} $!"
done
sleep 1
for p in home srv data mail; do lvsnap snapshot $p; done
kill $writers; wait $writers 2>/dev/null || true
lvsnap backups
out=$("$LVSNAP" backup home --dry-run)
echo "$out"
assert_contains "$out" "would back up home-lvsnap-"
assert_eq "$(ls /mnt/backup/rsync 2>/dev/null || true)" "" "a dry run writes nothing"

step "one backup per policy"
for p in home srv data mail cmd; do lvsnap backup $p; done
lvsnap backups
assert_eq "$("$LVSNAP" backups | grep -c complete)" 5 "five complete backups"
assert_not_contains "$(cat /proc/mounts)" "/run/lvsnap/backup" "mounts left behind"
for s in $(lvs --noheadings -o lv_name vg0 | grep -E '(data|mail)-lvsnap-'); do
  assert_eq "$(lv_field vg0/$s lv_active)" "" "thin snapshot $s deactivated after its backup"
done

step "each backup equals its snapshot"
for spec in home:ext4:rsync srv:xfs:archive data:xfs:rsync mail:ext4:archive; do
  IFS=: read -r v fs engine <<< "$spec"
  snap=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep "^$v-lvsnap-")
  gen=$(ls /mnt/backup/$engine/vg0/$v | grep -v manifest | head -1)
  gen=${gen%.tar.zst}
  mount_snapshot vg0/$snap /mnt/check-$v $fs
  case $engine in
    rsync) tree=/mnt/backup/rsync/vg0/$v/$gen ;;
    archive)
      tree=/mnt/backup/extract-$v; mkdir -p $tree
      tar --extract --zstd --xattrs --xattrs-include='*' --acls --numeric-owner -p \
        -f /mnt/backup/archive/vg0/$v/$gen.tar.zst -C $tree ;;
  esac
  same_tree /mnt/check-$v $tree
  [ -e $tree/tmp ] && fail "excluded tmp/ was backed up"
  assert_eq "$(getfattr --only-values -n user.origin $tree/data/blob)" lvsnap "xattr"
  assert_contains "$(getfacl -n $tree/etc/shadow 2>/dev/null)" "user:1234:rw-" "ACL"
  assert_eq "$(stat -c %h $tree/data/blob)" 2 "hard link kept"
  assert_eq "$(manifest_sums /mnt/backup/$engine/vg0/$v/$gen.manifest)" "$(tree_sums /mnt/check-$v tmp | sort -k2)" "manifest vs sha256sum of the snapshot"
  umount /mnt/check-$v
  case $v in data|mail) lvchange -an vg0/$snap ;; esac
  # The writer kept writing after the snapshot: the origin differs, the backup does not.
  [ "$(sha256sum < /mnt/$v/data/writer.log)" != "$(sha256sum < $tree/data/writer.log)" ] || fail "origin writes after the snapshot reached the backup"
  lvsnap verify vg0/$v@$gen
done

step "lvsnap mounted only snapshots, only read-only, xfs with nouuid"
events=$("$LVSNAP" catalog events --limit 200)
assert_contains "$events" "mount -t xfs -o ro,nouuid,norecovery /dev/vg0/srv-lvsnap-"
assert_contains "$events" "mount -t ext4 -o ro,noload /dev/vg0/home-lvsnap-"
assert_contains "$events" "lvchange --activate y --ignoreactivationskip vg0/data-lvsnap-"
assert_not_contains "$(grep -E '(^| )mount ' <<< "$events")" "/dev/vg0/home " "origin mounted by lvsnap"
assert_not_contains "$(grep -E '(^| )mount ' <<< "$events" | grep -v -- '-o ro,')" "mount -t" "a read-write mount"
assert_contains "$(cat /mnt/backup/cmd-mountline)" " ro," "the command engine saw a read-only mount"
assert_contains "$(cat /mnt/backup/cmd-mountline)" "/dev/mapper/vg0-cmd--lvsnap--" "of the snapshot"
same_tree /mnt/cmd /mnt/backup/cmd-copy
assert_eq "$(tagged_lvs | grep -c '^cmd-' || true)" 0 "the temporary snapshot is gone"
assert_contains "$(grep ' /mnt/home ' /proc/mounts)" " rw," "the origin is still mounted read-write"

step "a second generation shares unchanged files with the first"
echo changed >> /mnt/home/etc/passwd
sleep 1; lvsnap snapshot home; lvsnap backup home
gens=($(ls /mnt/backup/rsync/vg0/home | grep -v manifest))
assert_eq "${#gens[@]}" 2 "two generations"
assert_eq "$(stat -c %i /mnt/backup/rsync/vg0/home/${gens[0]}/many/f7)" "$(stat -c %i /mnt/backup/rsync/vg0/home/${gens[1]}/many/f7)" "unchanged file hard-linked"
assert_eq "$(stat -c %h /mnt/backup/rsync/vg0/home/${gens[1]}/many/f7)" 2 "link count of an unchanged file"
assert_eq "$(stat -c %h /mnt/backup/rsync/vg0/home/${gens[1]}/etc/passwd)" 1 "a changed file is a new copy"
out=$("$LVSNAP" backup home)
assert_contains "$out" "is already backed up" "the same snapshot is not backed up twice"

step "a third generation: keep = { last = 2 } prunes the first"
echo again >> /mnt/home/etc/passwd
sleep 1; lvsnap snapshot home
out=$("$LVSNAP" backup home); echo "$out"
assert_contains "$out" "pruned vg0/home@${gens[0]}"
[ -e /mnt/backup/rsync/vg0/home/${gens[0]} ] && fail "pruned generation still on disk"
[ -e /mnt/backup/rsync/vg0/home/${gens[0]}.manifest ] && fail "pruned manifest still on disk"
assert_eq "$(ls /mnt/backup/rsync/vg0/home | grep -vc manifest)" 2 "two generations left"
assert_eq "$(cat /mnt/backup/rsync/vg0/home/${gens[1]}/many/f7)" "file 7" "the kept generation still has its hard-linked files"
lvsnap backups --policy home --all

step "verify finds a flipped byte and a deleted file, and names both"
newest=$(ls /mnt/backup/rsync/vg0/home | grep -v manifest | tail -1)
g=/mnt/backup/rsync/vg0/home/$newest
lvsnap verify vg0/home@$newest
printf 'X' | dd of=$g/etc/passwd bs=1 seek=3 count=1 conv=notrunc 2> /dev/null
rm $g/many/f42
out=$("$LVSNAP" verify vg0/home@$newest) && fail "verify passed a damaged backup"
echo "$out"
assert_contains "$out" "FAILED, 3 problem(s)"
assert_contains "$out" "changed: many (mtime "
assert_contains "$out" "missing: many/f42"
assert_contains "$out" "changed: etc/passwd (content (SHA-256) differs, mtime "
assert_contains "$("$LVSNAP" backups --policy home)" "FAILED" "the failed verify is recorded"

step "verify --all checks the archives too; a truncated archive fails"
a=$(ls /mnt/backup/archive/vg0/srv/*.tar.zst)
truncate -s -1000 "$a"
out=$("$LVSNAP" verify --all 2>&1) && fail "verify --all passed"
echo "$out"
assert_contains "$out" "vg0/mail@"
assert_contains "$out" ": ok ("
assert_contains "$out" "vg0/srv@"
assert_contains "$(grep 'vg0/srv@' <<< "$out")" "FAILED"
