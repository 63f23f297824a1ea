#!/bin/bash
# provision-system.sh — the root filesystem of the systemd guest, once, cached: a Debian system
# made by mmdebstrap (systemd as init, udev, lvm2 with its own lvm.conf and services, a dpkg
# database) in an ext4 image. The test VM boots the usual kernel and initramfs, which mounts
# this image and hands over to systemd (tests/vm/run-vm.sh --root). The image is only ever
# booted with qemu's snapshot=on: every boot starts from the same state.
#
# A unit in the image, lvsnap-test-driver.service, runs the harness's command once the system is
# up, writes its status for the host and powers off.
#
# Prints the image's path. Installs mmdebstrap on the host when missing (root only).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LVSNAP_VM_CACHE:-$ROOT/target/lvm-vm}
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
# What an LVM server with lvsnap has, and what the tests use (rsync for a backup under the unit).
# restic and rclone: an off-host backup (restic to a REST server, rclone serving it on loopback).
PACKAGES="systemd,systemd-sysv,udev,lvm2,thin-provisioning-tools,xfsprogs,e2fsprogs,rsync,zstd,procps,restic,rclone"

log() { echo "provision-system: $*" >&2; }
die() { echo "provision-system: error: $*" >&2; exit 1; }

KEY=$( { cat "$0"; echo "$SUITE"; stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null; } | sha256sum | cut -c1-16)
IMG=$CACHE/system-$KEY/root.img
if [ -f "$CACHE/system-$KEY/ok" ]; then
  echo "$IMG"
  exit 0
fi

if ! command -v mmdebstrap > /dev/null; then
  [ "$(id -u)" = 0 ] || die "mmdebstrap is missing — run as root, or: sudo apt-get install mmdebstrap"
  log "installing mmdebstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >&2 \
    || die "apt-get install mmdebstrap failed"
fi
[ "$(id -u)" = 0 ] || die "building the systemd guest's root needs root (mmdebstrap in root mode)"

T0=$(date +%s)
mkdir -p "$CACHE"
W=$(mktemp -d "$CACHE/system-build.XXXXXX")
trap 'rm -rf --one-file-system "$W"' EXIT
R=$W/root

# The mirror the host uses, so that a machine with a local mirror needs nothing else.
MIRROR=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' 2>/dev/null | grep -v security | grep -m1 '/debian/$' || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian/}
log "mmdebstrap $SUITE from $MIRROR"
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" --skip=output/dev \
  --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/var/cache/apt/*' \
  "$SUITE" "$R" "$MIRROR" >&2 || die "mmdebstrap failed"

echo lvsnap-system > "$R/etc/hostname"
echo "/dev/vda / ext4 rw,noatime 0 1" > "$R/etc/fstab"
: > "$R/etc/machine-id"
# A quiet, quick boot on a serial console: nothing waits for a login or the network, no
# maintenance timer fires during a test.
for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-timesyncd.service \
         dpkg-db-backup.timer systemd-networkd-wait-online.service tmp.mount; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"
done
# The harness shares host directories into the guest (in CI, a clone under /tmp): nothing at
# boot may empty /tmp or /var/tmp, as Debian's tmp.conf (`D /tmp`) would, or mount a tmpfs over
# /tmp (tmp.mount, enabled from Debian 13 on).
mkdir -p "$R/etc/tmpfiles.d"
printf 'd /tmp 1777 root root -\nd /var/tmp 1777 root root -\n' > "$R/etc/tmpfiles.d/tmp.conf"
ln -sf /dev/null "$R/etc/systemd/system/systemd-tmpfiles-clean.timer"
mkdir -p "$R/usr/local/lib/lvsnap-test" "$R/etc/systemd/system/multi-user.target.wants" "$R/srv"
cat > "$R/usr/local/lib/lvsnap-test/driver" <<'DRIVER'
#!/bin/bash
# Runs the harness's command (/run/ctl/cmd.sh, from the host's control share) once the system
# is up; its status goes back to the host, then the machine powers off.
cd /
echo "VM_READY uptime=$(cut -d' ' -f1 /proc/uptime)"
set -o pipefail
bash /run/ctl/cmd.sh < /dev/null 2>&1 | cat
rc=$?
echo "$rc" > /run/ctl/status
echo "VM_EXIT_STATUS=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
systemctl poweroff --force --force
DRIVER
chmod 755 "$R/usr/local/lib/lvsnap-test/driver"
cat > "$R/etc/systemd/system/lvsnap-test-driver.service" <<'UNIT'
[Unit]
Description=lvsnap test driver: the harness's command, then power off
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/lib/lvsnap-test/driver
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -s ../lvsnap-test-driver.service "$R/etc/systemd/system/multi-user.target.wants/"

mkdir -p "$(dirname "$IMG").tmp"
rm -rf "$(dirname "$IMG").tmp"/*
mke2fs -q -t ext4 -L lvsnap-root -d "$R" -F "$(dirname "$IMG").tmp/root.img" 1536M >&2 \
  || die "mke2fs -d failed"
rm -rf "$(dirname "$IMG")"
mv "$(dirname "$IMG").tmp" "$(dirname "$IMG")"
touch "$(dirname "$IMG")/ok"
# Earlier images (1.5 GiB each, sparse) are not booted again.
find "$CACHE" -maxdepth 1 -name 'system-*' ! -name "system-$KEY" ! -name 'system-build.*' -exec rm -rf --one-file-system {} +
log "systemd guest root built in $(( $(date +%s) - T0 ))s: $IMG"
echo "$IMG"
