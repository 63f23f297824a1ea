#!/bin/bash
# vm-snapper.sh [PAIRS] — lvsnap against snapper on a thin volume in the test VM (BENCHMARKS.md).
# Builds a guest image that also carries snapper (cached apart from the test image).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(cd "$ROOT" && cargo build --release --quiet)
export LVSNAP_VM_EXTRA=snapper
exec "$ROOT/tests/vm/run-vm.sh" --share "$ROOT" --disks 1 -- \
  bash -c "mkdir -p /usr/local/bin && install -m 755 $ROOT/target/release/lvsnap /usr/local/bin/lvsnap && bash $ROOT/benches/vm/snapper.sh /usr/local/bin/lvsnap ${1:-10}"
