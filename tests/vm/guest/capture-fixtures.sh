#!/bin/bash
# capture-fixtures.sh OUT — runs in the VM: builds the LVM situations lvsnap's parser must
# understand and writes real lvm2 JSON reports of each into OUT. Run it through
# tests/vm/capture-fixtures.sh.
set -euo pipefail
OUT=$1
# The one inventory call lvsnap makes (src/lvm/report.rs, LVS_FIELDS) and the vgs report.
LVS_FIELDS=lv_uuid,lv_name,vg_name,origin,pool_lv,lv_time,lv_attr,lv_size,data_percent,snap_percent,metadata_percent,lv_tags,lv_merging,lv_skip_activation,lv_snapshot_invalid,lv_device_open,lv_active,lv_layout,lv_role,vg_free,vg_extent_size,vg_size
VGS_FIELDS=vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,lv_count
report() { lvs -a --reportformat json --units b --nosuffix --config 'report { time_format = "%s" }' -o "$LVS_FIELDS" "$@"; }
fresh() {
  awk '$1 ~ /^\/dev\/(mapper|vg)/ {print $2}' /proc/mounts | sort -r | xargs -r umount -l
  dmsetup remove_all -f; rm -rf /dev/vg0 /dev/mapper/vg0*
  wipefs -a -q /dev/vda; vgcreate -q -y vg0 /dev/vda > /dev/null
}
mkdir -p /mnt/o /mnt/s

# 1. A thick origin with one lvsnap snapshot and one foreign snapshot.
fresh
lvcreate -q -y -L 256M -n home vg0; mkfs.ext4 -q /dev/vg0/home
lvcreate -q -y -s -L 64M -n home-lvsnap-20261128T060000Z --addtag lvsnap --addtag lvsnap-policy=home vg0/home
lvcreate -q -y -s -L 32M -n home_manual vg0/home
report vg0 > "$OUT/thick-origin-with-snapshot.json"
vgs --reportformat json --units b --nosuffix -o "$VGS_FIELDS" vg0 > "$OUT/vgs.json"

# 2. A thin pool with a thin origin and a thin snapshot (activation skipped).
fresh
lvcreate -q -y -L 512M -T vg0/pool; lvcreate -q -y -V 1G -T vg0/pool -n data; mkfs.ext4 -q /dev/vg0/data
mount /dev/vg0/data /mnt/o; dd if=/dev/urandom of=/mnt/o/f bs=1M count=16 status=none; sync
lvcreate -q -y -s -n data-lvsnap-20261128T060000Z --addtag lvsnap --addtag lvsnap-policy=data vg0/data
umount /mnt/o
report vg0 > "$OUT/thin-pool-with-snapshot.json"

# 3. A thick snapshot written past its size: LVM marks it invalid.
fresh
lvcreate -q -y -L 128M -n var vg0
lvcreate -q -y -s -L 8M -n var-lvsnap-20261128T060000Z --addtag lvsnap --addtag lvsnap-policy=var vg0/var
dd if=/dev/urandom of=/dev/vg0/var bs=1M count=32 oflag=direct status=none
report vg0 > "$OUT/thick-snapshot-invalid.json"

# 4. A merge deferred because the origin is open: the snapshot shows as merging.
fresh
lvcreate -q -y -L 128M -n srv vg0; mkfs.ext4 -q /dev/vg0/srv
lvcreate -q -y -s -L 32M -n srv-lvsnap-20261128T060000Z --addtag lvsnap --addtag lvsnap-policy=srv vg0/srv
mount /dev/vg0/srv /mnt/o
lvconvert -y --merge vg0/srv-lvsnap-20261128T060000Z 2>&1 | sed 's/^/lvconvert: /' >&2
report vg0 > "$OUT/snapshot-merging.json"
umount /mnt/o
lvm version | head -1 | sed 's/^ *//' > "$OUT/lvm-version.txt"
