#!/bin/bash
# vm-prune.sh [PAIRS] — the pruning benchmark of BENCHMARKS.md: boots the test VM and runs
# benches/vm/prune.sh there with the release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
exec "$ROOT/tests/vm/run-vm.sh" --share "$ROOT" --disks 1 -- \
  bash -c "mkdir -p /usr/local/bin && install -m 755 $ROOT/target/release/lvsnap /usr/local/bin/lvsnap && bash $ROOT/benches/vm/prune.sh /usr/local/bin/lvsnap ${1:-3}"
