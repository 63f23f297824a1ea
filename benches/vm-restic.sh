#!/bin/bash
# vm-restic.sh [MIB] [ROUNDS] — the restic backup benchmark of BENCHMARKS.md: boots the test VM
# (2 GiB RAM, 6 GiB disks) and runs benches/vm/restic.sh there with the release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
exec "$ROOT/tests/vm/run-vm.sh" --share "$ROOT" --disks 2 --disk-size 6G --mem 2048 --timeout 3000 -- \
  bash -c "mkdir -p /usr/local/bin && install -m 755 $ROOT/target/release/lvsnap /usr/local/bin/lvsnap && bash $ROOT/benches/vm/restic.sh /usr/local/bin/lvsnap ${1:-256} ${2:-3}"
