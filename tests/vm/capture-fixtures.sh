#!/bin/bash
# capture-fixtures.sh — regenerate tests/fixtures/lvm/*.json from real lvm2 in the test VM.
# The parser's unit tests read these files; rerun this after changing the lvs fields.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$HERE/../fixtures/lvm" && pwd)
exec "$HERE/run-vm.sh" --share "$HERE" --share "$OUT" --disks 1 -- bash "$HERE/guest/capture-fixtures.sh" "$OUT"
