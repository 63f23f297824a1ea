#!/bin/bash
# run-scenarios.sh RESULTS LVSNAP SCENARIO... — runs in the VM. Each scenario gets a fresh
# volume group and its own log, status and duration in RESULTS.
set -uo pipefail
RESULTS=$1; export LVSNAP=$2; shift 2
export LVSNAP_SCENARIO_LIB=$(cd "$(dirname "$0")" && pwd)/lib.sh
# tests/vm, for scenarios that use the other guest scripts.
export VM_DIR=$(cd "$(dirname "$0")/.." && pwd)
PER_SCENARIO_TIMEOUT=${LVSNAP_SCENARIO_TIMEOUT:-600}

# Tear down whatever the last scenario left — mounts, LVs, VGs, device-mapper tables — and
# start from blank disks. vgcreate initializes the PV itself: one LVM command per reset.
reset_lvm() {
  pkill -9 -x lvsnap 2>/dev/null
  awk '$1 ~ /^\/dev\/(mapper|vg)/ || $2 ~ /^\/(mnt|run\/lvsnap)\// {print $2}' /proc/mounts | sort -r \
    | xargs -r umount -l 2>/dev/null
  dmsetup remove_all -f > /dev/null 2>&1
  rm -rf /dev/vg* /dev/mapper/vg* /var/lib/lvsnap /run/lvsnap /etc/lvsnap /mnt/* /run/lock/lvm/* /usr/local/sbin/*
  for d in /dev/vd?; do wipefs -a -q "$d" || return 1; done
  vgcreate -q -y vg0 /dev/vda > /dev/null
}

# The binary under test, copied once out of the 9p share: every later start reads it from RAM.
mkdir -p /usr/local/bin && install -m 755 "$LVSNAP" /usr/local/bin/lvsnap
export LVSNAP=/usr/local/bin/lvsnap

for f in "$@"; do
  name=$(basename "$f" .sh)
  if ! reset_lvm; then
    echo "could not prepare a fresh volume group" > "$RESULTS/$name.log"
    echo 125 > "$RESULTS/$name.status"
    continue
  fi
  start=$(date +%s%N)
  work=$(mktemp -d)
  (cd "$work" && exec timeout -k 5 "$PER_SCENARIO_TIMEOUT" bash -c 'source "$LVSNAP_SCENARIO_LIB"; source "$1"' scenario "$f") \
    > "$RESULTS/$name.log" 2>&1
  rc=$?
  [ $rc = 124 ] && echo "FAIL: scenario timed out after ${PER_SCENARIO_TIMEOUT}s" >> "$RESULTS/$name.log"
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$RESULTS/$name.ms"
  echo $rc > "$RESULTS/$name.status"
  echo "scenario $name: exit $rc in $(cat "$RESULTS/$name.ms") ms"
  rm -rf "$work"
done
exit 0
