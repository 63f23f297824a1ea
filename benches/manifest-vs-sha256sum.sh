#!/bin/bash
# manifest-vs-sha256sum.sh [MIB] — manifest hashing (1 and all workers) against sha256sum over
# the same files, from the page cache (BENCHMARKS.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:-1024}
(cd "$ROOT" && cargo build --release --quiet --example manifest)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
# Many files of mixed sizes: 3/4 of the bytes in 1 MiB files, the rest in 16 KiB ones.
mkdir -p "$W/tree/big" "$W/tree/small"
for i in $(seq 1 $((MIB * 3 / 4))); do head -c 1048576 /dev/urandom > "$W/tree/big/f$i"; done
for i in $(seq 1 $((MIB * 64 / 4))); do head -c 16384 /dev/urandom > "$W/tree/small/f$i"; done
cat "$W"/tree/*/* > /dev/null   # warm the page cache
s=$(date +%s%N); (cd "$W/tree" && find . -type f -print0 | xargs -0 sha256sum > /dev/null); e=$(date +%s%N)
awk -v ms=$(( (e - s) / 1000000 )) -v mib="$MIB" 'BEGIN {printf "sha256sum: %d MiB in %.2f s = %.0f MiB/s\n", mib, ms / 1000, mib / (ms / 1000)}'
"$ROOT/target/release/examples/manifest" "$W/tree" 1
"$ROOT/target/release/examples/manifest" "$W/tree" "$(nproc)"
