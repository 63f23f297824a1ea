#!/bin/busybox sh
# /init of the test VM: mount the pseudo filesystems, load the modules, mount the host's 9p
# shares, wait for the virtio disks, run /run/ctl/cmd.sh, report its status, power off.
/bin/busybox mkdir -p /bb
/bin/busybox --install -s /bb
# The packages' tools come first; busybox fills the gaps (sh, sleep, timeout, sha256sum, …).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/bb HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mkdir -p /run/lock/lvm /run/lvm /run/ctl
# Loopback only, for servers a scenario runs (a restic REST server); no other network.
ip link set lo up
hostname lvsnap-vm
while read -r ko; do insmod "/lib/modules/$(uname -r)/$ko" 2>/dev/null; done < /modlist
O=trans=virtio,version=9p2000.L,msize=512000,cache=none
if ! mount -t 9p -o $O ctl /run/ctl; then
  echo "VM_EXIT_STATUS=125 (no ctl share)"
  poweroff -f
fi
n=$(cat /run/ctl/ndisks)
w=0
while [ "$(ls /sys/block | grep -c '^vd')" -lt "$n" ] && [ $w -lt 200 ]; do sleep 0.05; w=$((w + 1)); done
# With a root image (run-vm.sh --root), /dev/vda is a Debian system to hand over to.
NEWROOT=""
if [ -f /run/ctl/sysroot ]; then
  NEWROOT=/newroot
  mkdir -p $NEWROOT
  if ! mount -t ext4 -o rw,noatime /dev/vda $NEWROOT; then
    echo "VM_EXIT_STATUS=125 (the root image does not mount)"
    poweroff -f
  fi
fi
i=0
while [ -f /run/ctl/share$i ]; do
  p=$NEWROOT$(cat /run/ctl/share$i)
  mkdir -p "$p"
  mount -t 9p -o $O share$i "$p"
  i=$((i + 1))
done
if [ -n "$NEWROOT" ]; then
  # systemd finds /dev, /proc, /sys and /run mounted (the control share inside /run), and
  # runs the command from its test driver unit.
  umount /tmp
  for m in /dev /proc /sys /run; do mount --move $m $NEWROOT$m; done
  exec switch_root $NEWROOT /sbin/init
fi
echo "VM_READY uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ -f /run/ctl/interactive ]; then
  # A shell on the serial console with job control; the VM powers off when it exits.
  setsid cttyhack bash -c '. /run/ctl/cmd.sh; exec bash -l'
  rc=$?
else
  # Through a pipe, not the serial tty: tools then print no colours or progress codes.
  set -o pipefail
  bash /run/ctl/cmd.sh < /dev/null 2>&1 | cat
  rc=$?
fi
echo $rc > /run/ctl/status
echo "VM_EXIT_STATUS=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
umount -a -t 9p 2>/dev/null
poweroff -f
