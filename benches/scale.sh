#!/bin/bash
# lvsnap's own time at scale, on the host, with LVM replaced by an instant stand-in
# (benches/tools/lvm-standin.rs): `list --json`, `plan`, `status` and a steady `run` (one snapshot
# taken and one pruned per policy) at 1k, 10k and 50k managed snapshots over 20 and 200
# policies (half thick, half thin origins). Each figure is the median of REPS runs of a
# release build, each from the same state and catalog; "own" is the wall time less the
# stand-in's (its calls' own time plus one process start each, timed apart).
#
# Usage: benches/scale.sh [--reps N] [--sizes "1000 10000 50000"] [--policies "20 200"]
#                         [--lvsnap PATH]   (another build to measure, e.g. an older commit's)
# Root only (lvsnap runs only programs in root-owned directories). Results: BENCHMARKS.md.
set -euo pipefail
# What the benchmark writes (the stand-in's state, the catalog) is root's alone, whatever the umask.
umask 077
cd "$(dirname "$0")/.."
REPS=3; SIZES="1000 10000 50000"; POLICIES="20 200"; OTHER=""
while [ $# -gt 0 ]; do
  case $1 in
    --reps) REPS=$2; shift ;;
    --sizes) SIZES=$2; shift ;;
    --policies) POLICIES=$2; shift ;;
    --lvsnap) OTHER=$(realpath "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "benches/scale.sh runs as root" >&2; exit 2; }

cargo build --release --quiet --bin lvsnap --example lvm-standin
# Both programs run as root from a directory only root can write, copied once: nothing in the
# checkout is run as root after the build. The catalog sits on /var/tmp's disk, as it would
# on /var/lib's (not on a tmpfs where a sync costs nothing).
WORK=$(mktemp -d /var/tmp/lvsnap-scale.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
install -m 755 "${OTHER:-target/release/lvsnap}" "$WORK/lvsnap"
install -m 755 target/release/examples/lvm-standin "$WORK/lvm-standin"
LVSNAP=$WORK/lvsnap
STANDIN=$WORK/lvm-standin

# Microseconds, without starting a process.
now_us() { echo "${EPOCHREALTIME/./}"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The cost of starting the stand-in once, in microseconds (the median of 50).
mkdir -p "$WORK/probe" && cp "$STANDIN" "$WORK/probe/lvm-standin"
START_US=$(for _ in $(seq 50); do
  a=$(now_us); "$WORK/probe/lvm-standin" noop; b=$(now_us); echo $(( b - a ))
done | median)
echo "stand-in process start: ${START_US} µs"

# The hour the seeded snapshots end at: the one before the current hour, so a run at the
# current hour is due for every policy.
hour=$(( $(date +%s) / 3600 * 3600 ))
END=$(date -u -d "@$(( hour - 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
NOW=$(date -u -d "@$hour" +%Y-%m-%dT%H:%M:%SZ)

printf '\n| policies | snapshots | command | wall ms | stand-in ms (calls) | own ms |\n'
printf '|---:|---:|---|---:|---:|---:|\n'
for p in $POLICIES; do
  for n in $SIZES; do
    d="$WORK/p$p-n$n"
    mkdir -p "$d/base"
    chmod 755 "$d"
    cp "$STANDIN" "$d/lvm-standin"
    for t in lvs lvcreate lvremove lvchange lvextend lvconvert lvrename; do ln -s lvm-standin "$d/$t"; done
    "$d/lvm-standin" seed "$p" "$n" "$END"
    "$LVSNAP" --config "$d/policies.toml" catalog rebuild > "$d/out" 2>&1 \
      || { echo "catalog rebuild failed:" >&2; tail -5 "$d/out" >&2; exit 1; }
    cp "$d/state.jsonl" "$d"/catalog.db* "$d/base/"
    for cmd in "list --json" "plan" "status" "run --now $NOW"; do
      for _ in $(seq "$REPS"); do
        cp "$d"/base/* "$d/"
        rm -f "$d/calls.log"
        a=$(now_us)
        # shellcheck disable=SC2086
        "$LVSNAP" --config "$d/policies.toml" $cmd > "$d/out" 2>&1 || {
          rc=$?
          echo "lvsnap $cmd exited $rc:" >&2; tail -5 "$d/out" >&2; exit 1
        }
        b=$(now_us)
        calls=$(wc -l < "$d/calls.log" 2> /dev/null || echo 0)
        standin_us=$(awk -v s="$START_US" '{ t += $2 + s } END { print t + 0 }' "$d/calls.log" 2> /dev/null || echo 0)
        echo "$(( b - a )) $standin_us $calls"
      done > "$d/times"
      wall=$(cut -d' ' -f1 "$d/times" | median)
      own=$(awk '{ print $1 - $2 }' "$d/times" | median)
      stand=$(cut -d' ' -f2 "$d/times" | median)
      calls=$(cut -d' ' -f3 "$d/times" | median)
      printf '| %s | %s | `%s` | %.0f | %.0f (%s) | %.0f |\n' "$p" "$n" "${cmd%% --now*}" \
        "$(awk -v x="$wall" "BEGIN { print x / 1000 }")" "$(awk -v x="$stand" "BEGIN { print x / 1000 }")" "$calls" \
        "$(awk -v x="$own" "BEGIN { print x / 1000 }")"
    done
    rm -rf "$d"
  done
done
