#!/bin/bash
# vm-freeze.sh [ROUNDS] — the snapshot-set freeze-window benchmark of BENCHMARKS.md: boots the
# test VM with Debian's backports kernel (a freeze needs Linux 6.6 or later, see
# tests/vm/newer-kernel.sh) and runs benches/vm/freeze.sh there with the release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
exec env $("$ROOT/tests/vm/newer-kernel.sh") "$ROOT/tests/vm/run-vm.sh" --share "$ROOT" --disks 1 -- \
  bash -c "mkdir -p /usr/local/bin && install -m 755 $ROOT/target/release/lvsnap /usr/local/bin/lvsnap && bash $ROOT/benches/vm/freeze.sh /usr/local/bin/lvsnap ${1:-7}"
