# LVM itself in the guest: thick snapshots of ext4 and xfs origins, mounted read-only with the
# options lvsnap uses, see the origin's old content; removal works.
for fs in ext4 xfs; do
  step "thick $fs origin"
  run lvcreate -q -y -L 320M -n data_$fs vg0
  make_fs $fs /dev/vg0/data_$fs
  mkdir -p /mnt/origin_$fs /mnt/snap_$fs
  run mount /dev/vg0/data_$fs /mnt/origin_$fs
  echo before > /mnt/origin_$fs/file
  sync

  step "snapshot while mounted, then change the origin"
  run lvcreate -q -y -s -L 64M -n data_${fs}_snap --addtag lvsnap vg0/data_$fs
  echo after > /mnt/origin_$fs/file
  sync
  assert_eq "$(lv_field vg0/data_${fs}_snap origin)" "data_$fs"
  assert_eq "$(lv_field vg0/data_${fs}_snap lv_tags)" "lvsnap"
  assert_eq "$(lv_field vg0/data_${fs}_snap lv_attr | cut -c1)" "s" "thick snapshot attr"

  step "mount the snapshot read-only ($(snapshot_mount_opts $fs))"
  run mount -t $fs -o "$(snapshot_mount_opts $fs)" /dev/vg0/data_${fs}_snap /mnt/snap_$fs
  assert_eq "$(cat /mnt/snap_$fs/file)" before "snapshot content"
  assert_eq "$(cat /mnt/origin_$fs/file)" after "origin content"
  expect_status 1 touch /mnt/snap_$fs/new
  run umount /mnt/snap_$fs

  step "remove the snapshot"
  run lvremove -q -y vg0/data_${fs}_snap
  assert_no_lv vg0/data_${fs}_snap
  run umount /mnt/origin_$fs
done
