#!/bin/bash
# vm-replicate.sh [ROUNDS] — the replication benchmark of BENCHMARKS.md: boots the test VM and
# runs benches/vm/replicate.sh there with the release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
exec "$ROOT/tests/vm/run-vm.sh" --share "$ROOT" --disks 2 --mem 1024 -- \
  bash -c "mkdir -p /usr/local/bin && install -m 755 $ROOT/target/release/lvsnap /usr/local/bin/lvsnap && bash $ROOT/benches/vm/replicate.sh /usr/local/bin/lvsnap ${1:-3}"
