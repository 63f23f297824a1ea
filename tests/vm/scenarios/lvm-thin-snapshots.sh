# LVM itself in the guest: thin snapshots carry activation-skip, activate with -K, mount
# read-only with the options lvsnap uses, and show the origin's old content.
run lvcreate -q -y -L 1G -T vg0/pool
for fs in ext4 xfs; do
  step "thin $fs origin"
  run lvcreate -q -y -V 512M -T vg0/pool -n thin_$fs
  make_fs $fs /dev/vg0/thin_$fs
  mkdir -p /mnt/origin_$fs /mnt/snap_$fs
  run mount /dev/vg0/thin_$fs /mnt/origin_$fs
  echo before > /mnt/origin_$fs/file
  sync

  step "thin snapshot: no size, activation skipped"
  run lvcreate -q -y -s -n thin_${fs}_snap --addtag lvsnap vg0/thin_$fs
  echo after > /mnt/origin_$fs/file
  sync
  attr=$(lv_field vg0/thin_${fs}_snap lv_attr)
  assert_eq "${attr:0:1}" V "thin snapshot type"
  assert_eq "${attr:9:1}" k "activation-skip flag"
  assert_eq "$(lv_field vg0/thin_${fs}_snap lv_active)" "" "thin snapshot starts inactive"
  assert_eq "$(lv_field vg0/thin_${fs}_snap pool_lv)" pool

  step "activate with -K and mount read-only"
  run lvchange -ay -K vg0/thin_${fs}_snap
  assert_eq "$(lv_field vg0/thin_${fs}_snap lv_active)" active
  run mount -t $fs -o "$(snapshot_mount_opts $fs)" /dev/vg0/thin_${fs}_snap /mnt/snap_$fs
  assert_eq "$(cat /mnt/snap_$fs/file)" before "snapshot content"
  assert_eq "$(cat /mnt/origin_$fs/file)" after "origin content"
  run umount /mnt/snap_$fs
  run lvchange -an vg0/thin_${fs}_snap

  step "remove the thin snapshot"
  run lvremove -q -y vg0/thin_${fs}_snap
  assert_no_lv vg0/thin_${fs}_snap
  run umount /mnt/origin_$fs
done
