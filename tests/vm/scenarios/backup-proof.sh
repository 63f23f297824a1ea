# Complete means proven: a database file rewritten in place with its size and mtime kept (rsync's
# quick check cannot see it) between two backups. The second rsync generation holds the new
# content — copied again, not hard-linked to the old — and says so; the archive holds it too;
# verify passes on both and the files equal the snapshot's. The first rsync backup compares every
# file it wrote with the snapshot while the copy goes on.
run lvcreate -q -y -L 48M -n home vg0
run lvcreate -q -y -L 48M -n mail vg0
make_fs ext4 /dev/vg0/home; make_fs ext4 /dev/vg0/mail; make_fs ext4 /dev/vdb
mkdir -p /mnt/backup /mnt/home /mnt/mail
mount /dev/vdb /mnt/backup; mount /dev/vg0/home /mnt/home; mount /dev/vg0/mail /mnt/mail
for v in home mail; do
  mkdir -p /mnt/$v/db; printf 'balance=100\n' > /mnt/$v/db/table; echo same > /mnt/$v/same
  touch -d '2025-01-01 00:00:00' /mnt/$v/db/table
done
sync
policy() {
  printf '[policy.%s]\nvolumes = ["vg0/%s"]\nschedule = "0 * * * *"\nsize = "16M"\nkeep = { last = 5 }\n' $1 $1
  printf '[policy.%s.backup]\nschedule = "0 2 * * *"\nengine = "%s"\ntarget = "/mnt/backup"\nkeep = { last = 5 }\n' $1 $2
}
write_policy "$(printf '[settings]\ntimezone = "UTC"\n\n'; policy home rsync; policy mail archive)"

declare -A GEN
for v in home mail; do
  lvsnap snapshot $v > /dev/null; sleep 1
  out=$("$LVSNAP" backup $v); echo "$out"
  assert_contains "$out" "proven in"
  if [ $v = home ]; then
    # Both files were compared with the snapshot while rsync still copied; none was left over.
    counts=$(echo "$out" | sed -n 's/.*(\([0-9]*\) read back, \([0-9]*\) of them during the copy.*/\1 \2/p')
    assert_eq "$counts" "2 2" "files read back, and of them during the copy"
  fi
  # Same size, same mtime, other content.
  printf 'balance=999\n' > /mnt/$v/db/table; touch -d '2025-01-01 00:00:00' /mnt/$v/db/table; sync
  snap=$("$LVSNAP" snapshot $v | sed -n 's/.* created //p'); sleep 1
  out=$("$LVSNAP" backup $v); echo "$out"
  GEN[$v]=vg0/$v@$(echo "$out" | sed -n 's/.* wrote \([0-9TZ-]*\) from .*/\1/p')
  [ $v = home ] && assert_contains "$out" "1 changed with size and mtime kept and copied again"
  lvsnap verify ${GEN[$v]}
  lvsnap restore ${GEN[$v]} db/table --to /tmp/check-$v > /dev/null
  assert_eq "$(cat /tmp/check-$v/db/table)" "balance=999" "$v: the second backup's db/table"
  lvsnap mount $snap /mnt/snap-$v > /dev/null
  cmp /tmp/check-$v/db/table /mnt/snap-$v/db/table
  lvsnap umount $snap > /dev/null
done
gens=(/mnt/backup/vg0/home/2*/)
assert_eq "$(cat ${gens[0]}db/table)" "balance=100" "the first generation keeps its own content"
assert_eq "$(stat -c %i ${gens[0]}same)" "$(stat -c %i ${gens[1]}same)" "an unchanged file is still shared"
