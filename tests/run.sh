#!/bin/bash
# tests/run.sh — the whole test suite: unit and integration tests, then the real-LVM suite in a
# qemu VM. On a fresh Debian machine as root it installs what it needs itself (qemu, and the
# guest's kernel, lvm2 and tools as unpacked Debian packages — nothing of the guest is installed
# on the host). Needs a Rust toolchain (rustup) of 1.89 or later.
#
#   sudo tests/run.sh            everything
#   tests/run.sh --no-vm         unit and integration tests only (not a full run)
set -euo pipefail
cd "$(dirname "$0")/.."
VM=1
[ "${1:-}" = --no-vm ] && VM=0

if ! command -v cargo > /dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo > /dev/null || { echo "tests/run.sh: cargo not found; install Rust 1.89 or later (https://rustup.rs)" >&2; exit 1; }

# Host tools the tests call: systemd-analyze verifies the units (tests/it/systemd.rs); rsync, GNU
# tar, zstd and setfacl/setfattr build the trees and archives the backup tests read back.
# Container images often lack them. (The VM part installs more itself: qemu, mmdebstrap,
# lintian, and cargo-deb with cargo.)
missing=""
for pair in systemd-analyze:systemd rsync:rsync tar:tar zstd:zstd setfacl:acl setfattr:attr; do
  command -v "${pair%%:*}" > /dev/null || missing="$missing ${pair#*:}"
done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || { echo "tests/run.sh: missing host tools; apt-get install$missing" >&2; exit 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing > /dev/null
fi

start=$(date +%s)
if [ $VM = 1 ]; then
  # Provision first, so that a missing package or a refused download stops here, clearly: the
  # guest of the Debian release's kernel, and the one of its backports kernel (for the
  # scenarios that need Linux 6.6 or later, tests/vm/scenarios-newer-kernel/).
  tests/vm/provision.sh > /dev/null
  env $(tests/vm/newer-kernel.sh) tests/vm/provision.sh --no-install > /dev/null
  # …and the Debian system with systemd as init that the package is installed into.
  tests/vm/provision-system.sh > /dev/null
  # The VM runs the release build, as administrators do; the systemd guest installs it as the
  # Debian package (and upgrades to the same with the next revision).
  deb=$(packaging/build-deb.sh)
  deb_upgrade=$(packaging/build-deb.sh --revision 2)
  tests/package.sh "$deb"
  LVSNAP_VM_BINARY=$PWD/target/release/lvsnap LVSNAP_VM_DEB=$PWD/$deb LVSNAP_VM_DEB_UPGRADE=$PWD/$deb_upgrade \
    cargo test --locked --no-fail-fast --features vm-tests
else
  cargo test --locked --no-fail-fast
fi
echo "tests/run.sh: done in $(( $(date +%s) - start ))s"
