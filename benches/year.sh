#!/bin/bash
# A simulated year of `lvsnap run` every 15 minutes (driven by --now) over 50 origins (half
# thick, half thin), with LVM replaced by the instant stand-in (benches/tools/lvm-standin.rs):
# the catalog's size on disk and `list --json`'s time (median of 3) after the first day and
# every 30 days after. Each origin keeps { last = 4, hourly = 24, daily = 7, weekly = 4,
# monthly = 3 }; the catalog keeps its history by the defaults (90 days, 40000 rows).
#
# Usage: benches/year.sh [--days D] [--volumes N] [--every D]   (root only; BENCHMARKS.md)
# A year is 35 040 runs of 50 snapshots each: hours of process starts. At 50 volumes the
# 40000-row cap binds after about 8 days, so --days 30 shows the plateau; with few volumes
# the 90 days bind first (--days 120).
set -euo pipefail
# What the benchmark writes (the stand-in's state, the catalog) is root's alone, whatever the umask.
umask 077
cd "$(dirname "$0")/.."
DAYS=365; VOLUMES=50; EVERY=30
while [ $# -gt 0 ]; do
  case $1 in
    --days) DAYS=$2; shift ;;
    --volumes) VOLUMES=$2; shift ;;
    --every) EVERY=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "benches/year.sh runs as root" >&2; exit 2; }
cargo build --release --quiet --bin lvsnap --example lvm-standin
WORK=$(mktemp -d /var/tmp/lvsnap-year.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
install -m 755 target/release/lvsnap "$WORK/lvsnap"
install -m 755 target/release/examples/lvm-standin "$WORK/lvm-standin"
for t in lvs lvcreate lvremove lvchange lvextend lvconvert lvrename; do ln -s lvm-standin "$WORK/$t"; done

step=900
now=$(( $(date +%s) / step * step ))
start=$(( now - DAYS * 86400 ))
utc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
"$WORK/lvm-standin" seed "$VOLUMES" 0 "$(utc $start)" > /dev/null
{
  sed -n '1,/^$/p' "$WORK/policies.toml"
  for i in $(seq 0 $(( VOLUMES - 1 ))); do
    printf '[policy.p%03d]\nvolumes = ["vg0/v%03d"]\nschedule = "*/15 * * * *"\n' "$i" "$i"
    printf 'keep = { last = 4, hourly = 24, daily = 7, weekly = 4, monthly = 3 }\n'
    if [ $(( i * 100 )) -lt $(( VOLUMES * 50 )) ]; then
      printf 'max-per-pool = 100000\n\n'
    else
      printf 'size = "4M"\nmax-thick-per-origin = 50\n\n'
    fi
  done
} > "$WORK/year.toml"
L() { "$WORK/lvsnap" --config "$WORK/year.toml" "$@"; }
now_us() { echo "${EPOCHREALTIME/./}"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
report() {  # DAY
  local size list
  size=$(cat "$WORK"/catalog.db* | wc -c)
  list=$(for _ in 1 2 3; do a=$(now_us); L list --json > /dev/null; b=$(now_us); echo $(( (b - a) / 1000 )); done | median)
  printf '| %s | %s | %.1f MiB | %s ms | %s |\n' "$1" "$runs" "$(awk -v b="$size" 'BEGIN { print b / 1048576 }')" \
    "$list" "$(grep -c . "$WORK/state.jsonl")"
}
printf '| day | runs | catalog on disk | list --json | LVs |\n|---:|---:|---:|---:|---:|\n'
runs=0; began=$(date +%s)
for (( t = start + step; t <= now; t += step )); do
  L run --now "$(utc $t)" > "$WORK/out" 2>&1 || { echo "run at $(utc $t) failed:" >&2; tail -5 "$WORK/out" >&2; exit 1; }
  runs=$(( runs + 1 ))
  day=$(( (t - start) / 86400 ))
  if [ $(( (t - start) % (EVERY * 86400) )) = 0 ] || [ $(( t - start )) = 86400 ] || [ $t = $now ]; then
    report "$day"
  fi
done
echo "$runs runs in $(( $(date +%s) - began )) s"
# Where the bytes are, per table and index (sqlite3's dbstat, when installed).
if command -v sqlite3 > /dev/null; then
  sqlite3 "$WORK/catalog.db" "SELECT name, COUNT(*) AS pages, ROUND(SUM(pgsize) / 1048576.0, 1) AS mib
    FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC LIMIT 12" | sed 's/|/ /g'
fi
