#!/bin/bash
# demo.sh [--scripted] — runs in the VM: a demo volume group for trying lvsnap out, with a
# policy file, then either a scripted session or a guide for an interactive one.
set -euo pipefail
LVSNAP=${LVSNAP:-lvsnap}

echo "=== setting up a demo volume group (vg0 on a blank 4 GiB virtual disk)"
awk '$1 ~ /^\/dev\/(mapper|vg)/ {print $2}' /proc/mounts | sort -r | xargs -r umount -l
dmsetup remove_all -f; rm -rf /dev/vg0 /dev/mapper/vg0*; wipefs -a -q /dev/vda
vgcreate -q -y vg0 /dev/vda > /dev/null
lvcreate -q -y -L 512M -n home vg0 > /dev/null; mkfs.ext4 -q /dev/vg0/home
lvcreate -q -y -L 1G -T vg0/pool > /dev/null; lvcreate -q -y -V 1G -T vg0/pool -n data > /dev/null
mkfs.xfs -q /dev/vg0/data
mkdir -p /srv/home /srv/data
mount /dev/vg0/home /srv/home; mount /dev/vg0/data /srv/data
echo "hello from the demo" > /srv/home/README; cp -r /etc /srv/data/etc-copy
mkdir -p /etc/lvsnap
cat > /etc/lvsnap/lvsnap.toml <<'TOML'
[settings]
timezone = "UTC"

[policy.home]                       # a thick origin: snapshots need copy-on-write space
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "20%ORIGIN"
keep = { last = 4, hourly = 24, daily = 7, weekly = 4, monthly = 12 }

[policy.data]                       # a thin origin: snapshots share the pool
volumes = ["vg0/data"]
schedule = "*/15 * * * *"
keep = { last = 8, daily = 14 }
TOML
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml

session() {
  echo "+ $*"
  "$@" || echo "(exit $?)"
  echo
}

if [ "${1:-}" = --scripted ]; then
  session lvs vg0
  session "$LVSNAP" --version
  session "$LVSNAP" config check
  session "$LVSNAP" simulate --policy home --from 2026-01-01T00:00:00Z --to 2026-02-01T00:00:00Z
  session "$LVSNAP" run --dry-run
  session "$LVSNAP" run
  echo "a change after the snapshot" >> /srv/home/README
  session "$LVSNAP" snapshot home --pin --note "before the demo upgrade"
  session "$LVSNAP" list
  session "$LVSNAP" plan
  session lvs -o lv_name,origin,lv_size,data_percent,lv_tags vg0
  echo "=== demo session done"
else
  cat <<'GUIDE'

You are root in a throw-away VM with real LVM. Nothing here touches your own disks.
  vg0/home  thick ext4 volume, mounted on /srv/home
  vg0/data  thin xfs volume in vg0/pool, mounted on /srv/data
  policies  /etc/lvsnap/lvsnap.toml (LVSNAP_CONFIG points there)

Try:
  lvsnap config check
  lvsnap plan                  what a run would do, with reasons
  lvsnap run                   the main job: due snapshots, pruning
  lvsnap list
  lvsnap snapshot home --pin --note "before the upgrade"
  lvsnap simulate --policy home --from 2026-01-01T00:00:00Z --to 2027-01-01T00:00:00Z
  lvs vg0
Leave with `exit` (the VM powers off).

GUIDE
fi
