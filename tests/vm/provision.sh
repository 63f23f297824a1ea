#!/bin/bash
# provision.sh — prepare everything the real-LVM test VM needs, once, and cache it.
#
# Host side: installs qemu-system-x86 (and cpio, xz-utils) with apt when missing.
# Guest side: downloads Debian packages (kernel image, lvm2 and its libraries, busybox-static,
# e2fsprogs, xfsprogs, util-linux, rsync, …) with `apt-get download` and unpacks them with
# `dpkg -x` into an image directory — nothing of the guest is installed on the host.
#
# The image lands in target/lvm-vm/image-KEY, KEY being a digest of the package versions and
# of this script, so a second run finds it and returns at once. Prints the image directory.
#
# Usage: tests/vm/provision.sh [--no-install]
#   --no-install  never call apt-get install (fail with what to install instead)
# LVSNAP_VM_EXTRA="pkg …" adds packages to the guest (benches/vm-snapper.sh adds snapper); such
# an image is cached separately. LVSNAP_VM_KERNEL=PACKAGE boots another kernel package than the
# one linux-image-amd64 depends on (with APT_CONFIG naming lists that hold it: the snapshot-set
# freeze scenario boots Debian's backports kernel, see tests/vm/newer-kernel.sh); also cached
# separately.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${LVSNAP_VM_CACHE:-$ROOT/target/lvm-vm}
INSTALL=1
[ "${1:-}" = --no-install ] && INSTALL=0

log() { echo "provision: $*" >&2; }
die() { echo "provision: error: $*" >&2; exit 1; }

# What the guest runs: the LVM stack, filesystems, and what lvsnap's backups and restores use.
# bash and the GNU tools: Debian's static busybox runs its own applets before anything on PATH,
# so scenarios run under bash and get the tools an administrator has. restic is the restic
# engine's client; rclone serves a restic repository on the guest's loopback (`serve restic`).
GUEST_PACKAGES="busybox-static bash coreutils findutils diffutils grep sed lvm2 dmsetup
  thin-provisioning-tools e2fsprogs xfsprogs util-linux mount rsync tar zstd attr acl
  restic rclone"
# sshd and ssh, for replication through a real ssh on the guest's loopback; their libraries
# (PAM, Kerberos) come whole, like an extra package's.
SSH_PACKAGES="openssh-server openssh-client"
# Library packages pulled in only by maintainer scripts or tools the guest never runs.
LIB_EXCLUDE='^lib(perl|python|icu|db5|gdbm|file-|number-|text-|newt|slang|debian-installer|elogind|gssapi|krb5|k5crypto|tirpc|nsl|ncurses|readline|pam)'
HOST_PACKAGES="qemu-system-x86 cpio xz-utils"
# Kernel modules the guest loads (dependencies are resolved from each module's modinfo).
# crc32c_generic first: libcrc32c, ext4 and xfs ask the crypto API for "crc32c" when loading.
MODULES="crc32c_generic libcrc32c dm-mod dm-snapshot dm-thin-pool dm-bufio dm-persistent-data
  ext4 xfs virtio_pci virtio_blk 9pnet_virtio 9p"

# ------------------------------------------------------------------ host packages
missing=""
for p in $HOST_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
apt_updated=0
apt_update() {
  [ $apt_updated = 1 ] && return 0
  log "apt-get update"
  apt-get update -qq >&2 || die "apt-get update failed; check the network or the apt sources"
  apt_updated=1
}
if [ -n "$missing" ]; then
  [ $INSTALL = 1 ] || die "missing host packages:$missing — install them with: apt-get install$missing"
  [ "$(id -u)" = 0 ] || die "missing host packages:$missing — run as root, or: sudo apt-get install$missing"
  apt_update
  log "installing$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2 \
    || die "apt-get install$missing failed"
fi
for b in qemu-system-x86_64 cpio xz dpkg-deb apt-get; do
  command -v $b >/dev/null || die "missing $b on the host"
done

# ------------------------------------------------------------------ fast path
# Unchanged scripts and unchanged apt lists mean an unchanged image: skip the apt queries.
EXTRA=${LVSNAP_VM_EXTRA:-}
KERNEL_WANTED=${LVSNAP_VM_KERNEL:-}
CURRENT=$CACHE/current$(echo "$EXTRA$KERNEL_WANTED" | tr -c 'a-z0-9\n' '-' | sed 's/^./-&/')
FASTKEY=$( { echo "$EXTRA $KERNEL_WANTED"; cat "$0" "$HERE/guest-init.sh"; stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null; } \
           | sha256sum | cut -c1-16)
if [ -f "$CURRENT" ]; then
  read -r k img < "$CURRENT" || true
  if [ "${k:-}" = "$FASTKEY" ] && [ -f "${img:-/nonexistent}/ok" ]; then
    echo "$img"
    exit 0
  fi
fi

# ------------------------------------------------------------------ package versions → cache key
versions() {
  # "package version" for each named package, from the apt lists (no download).
  apt-cache show --no-all-versions "$@" 2>/dev/null | awk '/^Package:/{p=$2} /^Version:/{print p, $2}'
}
kernel_pkg() {
  if [ -n "$KERNEL_WANTED" ]; then echo "$KERNEL_WANTED"; return; fi
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'
}
KPKG=$(kernel_pkg)
if [ -z "$KPKG" ]; then
  apt_update
  KPKG=$(kernel_pkg)
fi
[ -n "$KPKG" ] || die "cannot find the Debian kernel package (apt-cache depends linux-image-amd64)"
LIBS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
         --no-replaces --no-enhances $GUEST_PACKAGES 2>/dev/null \
       | grep -E '^(lib[a-z0-9]|zlib1g)' | grep -Ev "$LIB_EXCLUDE" | sort -u | tr '\n' ' ')
# Extra packages bring all their libraries: their tools are run, unlike maintainer scripts.
EXTRA_LIBS=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
               --no-replaces --no-enhances $SSH_PACKAGES $EXTRA 2>/dev/null | grep -E '^(lib[a-z0-9]|zlib1g)' \
             | grep -v '^libelogind' | sort -u | tr '\n' ' ')
ALL=$(echo $KPKG $GUEST_PACKAGES $SSH_PACKAGES $EXTRA $LIBS $EXTRA_LIBS | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
VERSIONS=$(versions $ALL | sort -u)
[ "$(echo "$VERSIONS" | wc -l)" -ge 20 ] || die "apt knows too few of the guest packages; run apt-get update"
KEY=$( { echo "$VERSIONS"; cat "$0" "$HERE/guest-init.sh"; } | sha256sum | cut -c1-16)
IMAGE=$CACHE/image-$KEY
if [ -f "$IMAGE/ok" ]; then
  echo "$FASTKEY $IMAGE" > "$CURRENT"
  echo "$IMAGE"
  exit 0
fi

# ------------------------------------------------------------------ download and unpack
T0=$(date +%s)
mkdir -p "$CACHE/debs"
W=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$W"' EXIT
log "downloading $(echo $ALL | wc -w) packages for the guest"
# apt-get download names files package_version_arch.deb with an epoch's ':' as '%3a'.
debfile() { ls "$CACHE/debs/${1}_${2//:/%3a}_"*.deb 2>/dev/null | head -1; }
version_of() { echo "$VERSIONS" | awk -v p="$1" '$1==p{print $2; exit}'; }
want=()
for p in $ALL; do
  v=$(version_of "$p")
  if [ -n "$v" ] && [ -z "$(debfile "$p" "$v")" ]; then want+=("$p=$v"); fi
done
# One apt-get call for all (fast); on failure, one by one to name the package that was refused.
if [ ${#want[@]} -gt 0 ] && ! (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "${want[@]}" >&2); then
  for pv in "${want[@]}"; do
    (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pv" >&2) \
      || die "apt-get download $pv was refused; check the apt sources (apt-get update)"
  done
fi
R=$W/root
mkdir -p "$R"
for p in $ALL; do
  v=$(version_of "$p")
  [ -n "$v" ] || continue
  dpkg-deb -x "$(debfile "$p" "$v")" "$R"
done
KVER=$(ls "$R/lib/modules")
log "unpacked in $(( $(date +%s) - T0 ))s (kernel $KVER)"

# The kernel: boot the uncompressed vmlinux (PVH entry) — 3 s faster under TCG than vmlinuz.
mkdir -p "$W/image"
off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$R/boot/vmlinuz-$KVER" | head -1 | cut -d: -f1 || true)
if [ -n "$off" ] && tail -c +$((off + 1)) "$R/boot/vmlinuz-$KVER" | xz -dc > "$W/image/vmlinux" 2>/dev/null \
   && [ -s "$W/image/vmlinux" ]; then :; else
  rm -f "$W/image/vmlinux"; cp "$R/boot/vmlinuz-$KVER" "$W/image/vmlinuz"
fi

# Merged /usr, as on a Debian 12 system: packages still ship some files under /bin, /sbin, /lib.
for d in bin sbin lib lib64; do
  if [ -d "$R/$d" ] && [ ! -L "$R/$d" ]; then
    mkdir -p "$R/usr/$d"; cp -a "$R/$d/." "$R/usr/$d/"; rm -rf "${R:?}/$d"
  fi
  mkdir -p "$R/usr/$d"; ln -s "usr/$d" "$R/$d"
done
# Modules: only those the guest loads, dependencies first.
M=$R/usr/lib/modules/$KVER
G=$W/modules/$KVER
mkdir -p "$G"
# Debian 12's kernel stores modules as .ko; newer ones (backports) as .ko.xz, which the guest's
# insmod cannot read: those are unpacked here.
find "$M/kernel" -name '*.ko' -o -name '*.ko.xz' > "$W/ko.idx"
: > "$W/modlist"
addmod() {
  local f d rel
  f=$(grep -m1 -E "/$1\.ko(\.xz)?\$" "$W/ko.idx" || grep -m1 -E "/${1//-/_}\.ko(\.xz)?\$" "$W/ko.idx") || {
    # Built into a newer kernel: nothing to load.
    grep -qE "/(${1}|${1//-/_})\.ko\$" "$M/modules.builtin" 2>/dev/null && return 0
    die "kernel module $1 not found in $KPKG"
  }
  rel=${f#"$M"/}; rel=${rel%.xz}
  grep -qx "$rel" "$W/modlist" && return 0
  mkdir -p "$G/$(dirname "$rel")"
  case "$f" in *.xz) xz -dc "$f" > "$G/$rel" ;; *) cp "$f" "$G/$rel" ;; esac
  for d in $(tr '\0' '\n' < "$G/$rel" | grep -a -m1 '^depends=' | cut -d= -f2 | tr ',' ' '); do addmod "$d"; done
  echo "$rel" >> "$W/modlist"
}
for m in $MODULES; do addmod "$m"; done
rm -rf "$M" "$R/boot" "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/locale" "$R/usr/share/info" \
       "$R/usr/share/lintian" "$R/etc/init.d" "$R/usr/lib/systemd"
mkdir -p "$M"; cp -a "$G/." "$M/"; cp "$W/modlist" "$R/modlist"

# Every ELF file's libraries must be in the image: fail here, not in the guest. Libraries no
# program needs are dropped (a smaller initramfs boots faster under emulation); those a Rust
# binary such as lvsnap links are kept.
LIBPATH="$R/usr/lib/x86_64-linux-gnu:$R/usr/lib"
find "$R/usr/bin" "$R/usr/sbin" -type f -perm -u+x | while read -r f; do
  [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = 177ELF ] || continue
  LD_LIBRARY_PATH=$LIBPATH ldd "$f" 2>/dev/null | awk -v f="$f" '/not found/{print "MISSING " f ": " $1} /=> \//{print $3}' || true
done | sort -u > "$W/needed"
if grep -q '^MISSING' "$W/needed"; then
  log "warning: libraries not in the image (those tools will not run):"; grep '^MISSING' "$W/needed" >&2
fi
for l in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1 libnss_files.so.2 libresolv.so.2; do
  echo "$R/usr/lib/x86_64-linux-gnu/$l" >> "$W/needed"
done
grep -v '^MISSING' "$W/needed" | xargs -r readlink -f > "$W/needed.real"
find "$R/usr/lib/x86_64-linux-gnu" -maxdepth 1 \( -type f -o -type l \) -name 'lib*.so*' | while read -r l; do
  grep -qxF "$l" "$W/needed" || grep -qxF "$(readlink -f "$l")" "$W/needed.real" || rm -f "$l"
done
rm -rf "$R/usr/lib/x86_64-linux-gnu/gconv" "$R/usr/lib/x86_64-linux-gnu/perl" "$R/usr/share/perl5"
for lib in $(find "$R/usr/sbin/lvm" "$R/usr/bin/rsync" "$R/usr/sbin/mkfs.xfs" -type f | xargs -n1 env LD_LIBRARY_PATH=$LIBPATH ldd | awk '/=> \//{print $3}'); do
  case $lib in "$R"/*) ;; *) die "lvm/rsync/mkfs.xfs need $lib, which no guest package provides; add its package to GUEST_PACKAGES" ;; esac
done

# ------------------------------------------------------------------ the guest's own files
cp "$HERE/guest-init.sh" "$R/init"; chmod +x "$R/init"
mkdir -p "$R"/{proc,sys,dev,run,tmp,mnt,root,var/tmp,var/lib,etc/lvm}
ln -sf bash "$R/usr/bin/sh"
ln -sf /proc/mounts "$R/etc/mtab"
printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\ndisk:x:6:\nalice:x:1000:\nbob:x:1001:\nnogroup:x:65534:\n' > "$R/etc/group"
# No udevd in the guest: libdevmapper creates /dev/mapper and /dev/VG nodes itself; no dmeventd
# (monitoring) and no lvmpolld.
cat > "$R/etc/lvm/lvm.conf" <<'CONF'
devices { obtain_device_list_from_udev = 0 external_device_info_source = "none" use_devicesfile = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { use_lvmpolld = 0 event_activation = 0 }
CONF
echo "$KVER" > "$W/image/kver"
echo "$VERSIONS" > "$W/image/packages"
# Uncompressed: under emulation the kernel unpacks it ~2 s faster than a gzip one.
(cd "$R" && find . | cpio -o -H newc --quiet) > "$W/image/initramfs.cpio"
rm -rf "$IMAGE"
mv "$W/image" "$IMAGE"
touch "$IMAGE/ok"
echo "$FASTKEY $IMAGE" > "$CURRENT"
log "guest image built in $(( $(date +%s) - T0 ))s: $IMAGE ($(du -sh "$IMAGE/initramfs.cpio" | cut -f1) initramfs)"
echo "$IMAGE"
