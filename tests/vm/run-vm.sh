#!/bin/bash
# run-vm.sh — run a command as root in a throw-away qemu VM with real device-mapper and LVM,
# blank sparse virtio disks (/dev/vda, /dev/vdb, …) and host directories shared at the same path.
#
# Usage: tests/vm/run-vm.sh [options] [--] COMMAND [ARGS...]
#   --share DIR        mount host DIR at the same path in the guest (9p, read-write); repeatable
#   --env NAME         copy host variable NAME into the guest; repeatable
#   --disks N          number of blank disks (default 2)
#   --disk-size SIZE   size of each disk, truncate syntax (default 4G)
#   --mem MB           guest memory (default 768)
#   --timeout SEC      wall-clock limit for the whole VM (default 900)
#   --console FILE     also write the guest's console to FILE
#   --interactive      give the command the console; a shell follows it (try-out)
#   --accel auto|kvm|tcg  default auto: KVM when a probe boot works here, TCG otherwise
#   --root IMG         boot IMG (an ext4 Debian system, tests/vm/provision-system.sh) with
#                      systemd as init, as /dev/vda, writes discarded; the blank disks follow
# Exit status: COMMAND's status in the guest; 124 timeout; 125 the VM gave no status (crash,
# kernel panic, qemu failure) — the console tail says which.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SHARES=(); ENVS=(); ROOTIMG=""; NDISKS=2; DISK_SIZE=4G; MEM=768; TIMEOUT=900; CONSOLE=""; INTERACTIVE=0
ACCEL=${LVSNAP_VM_ACCEL:-auto}
while [ $# -gt 0 ]; do
  case "$1" in
    --share) SHARES+=("$(realpath "$2")"); shift ;;
    --env) ENVS+=("$2"); shift ;;
    --disks) NDISKS=$2; shift ;;
    --disk-size) DISK_SIZE=$2; shift ;;
    --mem) MEM=$2; shift ;;
    --timeout) TIMEOUT=$2; shift ;;
    --console) CONSOLE=$2; shift ;;
    --interactive) INTERACTIVE=1 ;;
    --accel) ACCEL=$2; shift ;;
    --root) ROOTIMG=$(realpath "$2"); shift ;;
    --) shift; break ;;
    -*) echo "run-vm: unknown option $1" >&2; exit 125 ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || { echo "run-vm: no command given" >&2; exit 125; }
if [ -n "$ROOTIMG" ]; then
  for s in "${SHARES[@]}"; do
    # systemd owns these in its guest: share a directory below them instead.
    # …and the systemd scenarios empty /mnt, /srv, /etc/lvsnap and /var/lib/lvsnap between runs.
    case "$s" in /|/tmp|/var/tmp|/run|/run/*|/mnt|/mnt/*|/srv|/srv/*|/etc|/etc/*|/var/lib|/var/lib/*)
      echo "run-vm: --share $s cannot be used with --root (the guest's system owns it)" >&2; exit 125 ;; esac
  done
fi
log() { echo "run-vm: $*" >&2; }

IMAGE=$("$HERE/provision.sh") || exit 125
KIMG=$IMAGE/vmlinux
[ -s "$KIMG" ] || KIMG=$IMAGE/vmlinuz

W=$(mktemp -d /tmp/lvsnap-vm.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/ctl"
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
  echo "cd $(q "$PWD") 2>/dev/null || cd /"
  for e in "${ENVS[@]}"; do [ -n "${!e+x}" ] && echo "export $e=$(q "${!e}")"; done
  [ $INTERACTIVE = 1 ] || printf 'exec'
  for a in "$@"; do printf ' %s' "$(q "$a")"; done
  echo
} > "$W/ctl/cmd.sh"
DRIVES=()
APPEND="console=ttyS0 panic=-1 quiet"
if [ -n "$ROOTIMG" ]; then
  DRIVES+=(-drive "file=$ROOTIMG,format=raw,if=virtio,snapshot=on,cache=unsafe")
  touch "$W/ctl/sysroot"
  APPEND="$APPEND systemd.show_status=false"
fi
echo $((NDISKS + ${#DRIVES[@]} / 2)) > "$W/ctl/ndisks"
[ $INTERACTIVE = 1 ] && touch "$W/ctl/interactive"
VIRTFS=(-virtfs "local,path=$W/ctl,mount_tag=ctl,security_model=none,id=ctl")
for i in "${!SHARES[@]}"; do
  echo "${SHARES[$i]}" > "$W/ctl/share$i"
  VIRTFS+=(-virtfs "local,path=${SHARES[$i]},mount_tag=share$i,security_model=none,id=share$i")
done
for ((i = 0; i < NDISKS; i++)); do
  truncate -s "$DISK_SIZE" "$W/disk$i.img"
  DRIVES+=(-drive "file=$W/disk$i.img,format=raw,if=virtio,cache=unsafe")
done

qemu() {  # accel, cpu, timeout, then extra arguments
  local accel=$1 cpu=$2 limit=$3; shift 3
  timeout -k 10 "$limit" qemu-system-x86_64 -M q35 -accel "$accel" -cpu "$cpu" -smp 2 -m "$MEM" \
    -nodefaults -display none -no-reboot -serial stdio \
    -kernel "$KIMG" -initrd "$IMAGE/initramfs.cpio" -append "$APPEND" "$@"
}

# KVM only when it really boots here: on some hosts /dev/kvm exists but nested KVM aborts or
# crawls. The probe's verdict is cached per host kernel.
if [ "$ACCEL" = auto ]; then
  probe=$(dirname "$IMAGE")/accel-$(uname -r)
  if [ ! -f "$probe" ]; then
    verdict=tcg
    if [ -w /dev/kvm ]; then
      mkdir -p "$W/probe"; echo 0 > "$W/probe/ndisks"; echo 'exit 0' > "$W/probe/cmd.sh"
      if qemu kvm host 30 -virtfs "local,path=$W/probe,mount_tag=ctl,security_model=none,id=ctl" \
           < /dev/null > "$W/probe.log" 2>&1 && [ "$(cat "$W/probe/status" 2>/dev/null)" = 0 ]; then
        verdict=kvm
      fi
    fi
    echo $verdict > "$probe"
    log "accelerator probe: $verdict"
  fi
  ACCEL=$(cat "$probe")
fi
CPU=max; [ "$ACCEL" = kvm ] && CPU=host

set +e
if [ $INTERACTIVE = 1 ]; then
  qemu "$ACCEL" "$CPU" "$TIMEOUT" "${DRIVES[@]}" "${VIRTFS[@]}"
  qrc=$?
else
  qemu "$ACCEL" "$CPU" "$TIMEOUT" "${DRIVES[@]}" "${VIRTFS[@]}" < /dev/null | tr -d '\r' \
    | if [ -n "$CONSOLE" ]; then tee "$CONSOLE"; else cat; fi
  qrc=${PIPESTATUS[0]}
fi
set -e
if [ -s "$W/ctl/status" ]; then exit "$(cat "$W/ctl/status")"; fi
[ "$qrc" = 124 ] && { log "timeout after ${TIMEOUT}s"; exit 124; }
log "VM ended without a status (qemu exit $qrc): a crash or kernel panic; see the console above"
exit 125
