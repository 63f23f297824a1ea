#!/bin/bash
# daemon-idle.sh [SECONDS] — the idle daemon of BENCHMARKS.md: 20 policies (nightly schedules),
# after the start-up catch-up, over SECONDS (default 60): resident memory and CPU time. LVM is
# stood in for by stub tools on PATH (this measures lvsnap idling, not LVM).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-60}
(cd "$ROOT" && cargo build --release --quiet)
W=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$W"' EXIT
mkdir -p "$W/bin"
lvs=""
for i in $(seq 0 19); do
  lvs="$lvs${lvs:+,}{\"lv_uuid\":\"u$i\",\"lv_name\":\"v$i\",\"vg_name\":\"vg0\",\"origin\":\"\",\"pool_lv\":\"\",\"lv_time\":\"1772409600\",\"lv_attr\":\"-wi-a-----\",\"lv_size\":\"1073741824\",\"data_percent\":\"\",\"snap_percent\":\"\",\"metadata_percent\":\"\",\"lv_tags\":\"\",\"lv_merging\":\"\",\"lv_skip_activation\":\"\",\"lv_snapshot_invalid\":\"\",\"lv_device_open\":\"\",\"lv_active\":\"active\",\"lv_layout\":\"linear\",\"lv_role\":\"public\",\"vg_free\":\"107374182400\",\"vg_extent_size\":\"4194304\",\"vg_size\":\"214748364800\"}"
done
printf '#!/bin/sh\necho %s\n' "'{\"report\":[{\"lv\":[$lvs]}]}'" > "$W/bin/lvs"
for t in lvcreate lvremove lvextend lvchange; do printf '#!/bin/sh\nexit 0\n' > "$W/bin/$t"; done
chmod +x "$W/bin/"*
{
  printf '[settings]\ncatalog = "%s/catalog.db"\nruntime-dir = "%s/run"\ntimezone = "UTC"\n\n' "$W" "$W"
  for i in $(seq 0 19); do
    printf '[policy.p%s]\nvolumes = ["vg0/v%s"]\nschedule = "0 3 * * *"\nsize = "1G"\nkeep = { last = 7 }\n\n' $i $i
  done
} > "$W/lvsnap.toml"
PATH="$W/bin:$PATH" "$ROOT/target/release/lvsnap" --config "$W/lvsnap.toml" daemon 2> "$W/daemon.log" &
pid=$!
sleep 5
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }
c0=$(cpu)
sleep "$SECS"
c1=$(cpu)
rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid; rc=$?
echo "policies: 20, idle: ${SECS}s, catch-up snapshots: $(grep -c ' created ' "$W/daemon.log" || true)"
echo "CPU time while idle: $(( (c1 - c0) * 1000 / tick )) ms = $(awk -v c=$((c1 - c0)) -v t=$tick -v s=$SECS 'BEGIN {printf "%.3f", c / t / s * 100}')% of one core"
echo "RSS: $((rss / 1024)) MiB now, $((hwm / 1024)) MiB peak; exit status after SIGTERM: $rc"
