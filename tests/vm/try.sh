#!/bin/bash
# try.sh — see lvsnap work against real LVM without touching your disks: builds lvsnap, boots
# the test VM with a demo volume group and policy, and drops you into a shell there.
#   tests/vm/try.sh              interactive shell (exit to power off)
#   tests/vm/try.sh --scripted   a scripted session, printed, then power off
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
mkdir -p "$ROOT/target/lvm-vm/try"
install -m 755 "$ROOT/target/release/lvsnap" "$ROOT/target/lvm-vm/try/lvsnap"
SETUP="mkdir -p /usr/local/bin && install -m 755 $ROOT/target/lvm-vm/try/lvsnap /usr/local/bin/lvsnap"
if [ "${1:-}" = --scripted ]; then
  exec "$HERE/run-vm.sh" --share "$ROOT" --disks 1 -- bash -c "$SETUP && bash $HERE/guest/demo.sh --scripted"
fi
exec "$HERE/run-vm.sh" --share "$ROOT" --disks 1 --interactive -- bash -c "$SETUP && source $HERE/guest/demo.sh"
