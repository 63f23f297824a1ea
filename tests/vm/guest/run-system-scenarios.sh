#!/bin/bash
# run-system-scenarios.sh RESULTS DEB DEB_UPGRADE SCENARIO... — runs in the systemd guest
# (tests/vm/provision-system.sh), from its test driver unit. Before each scenario: lvsnap purged
# and its units gone, the blank disks /dev/vdb and /dev/vdc wiped (/dev/vda is the system), then
# the package DEB installed with dpkg, as an administrator would. DEB_UPGRADE is the same
# package with a later Debian revision, for the upgrade test. Each scenario gets its own log,
# status and duration in RESULTS.
set -uo pipefail
RESULTS=$1; export LVSNAP_DEB=$2 LVSNAP_DEB_UPGRADE=$3; shift 3
export LVSNAP=/usr/sbin/lvsnap
export LVSNAP_SCENARIO_LIB=$(cd "$(dirname "$0")" && pwd)/lib.sh
PER_SCENARIO_TIMEOUT=${LVSNAP_SCENARIO_TIMEOUT:-600}
DISKS="/dev/vdb /dev/vdc"
# Durations from the uptime: a scenario may move the wall clock.
uptime_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

reset_system() {
  systemctl stop lvsnap.timer lvsnap-daemon.service lvsnap.service rest-server 2> /dev/null
  systemctl reset-failed 2> /dev/null
  rm -rf /etc/systemd/system/lvsnap*.d
  DEBIAN_FRONTEND=noninteractive dpkg --purge lvsnap > /dev/null 2>&1
  swapoff -a
  awk '$1 ~ /^\/dev\/(mapper|vg)/ {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2> /dev/null
  for vg in $(vgs --noheadings -o vg_name 2> /dev/null); do vgremove -ff -y "$vg" > /dev/null 2>&1; done
  dmsetup remove_all -f > /dev/null 2>&1
  for d in $DISKS; do wipefs -a -q "$d" || return 1; done
  # --one-file-system: a host directory shared into the guest is never followed into.
  rm -rf --one-file-system /var/lib/lvsnap /etc/lvsnap /srv/backup /srv/rest /root/restic-cache /mnt/*
  # What a scenario may have taken away to test a host that lacks it.
  for hidden in /root/hidden/*; do [ -e "$hidden" ] && mv "$hidden" /usr/sbin/; done
  # Nothing of the last scenario's timer or journal: a timer's last trigger and its runs'
  # journal lines are what the next one checks.
  rm -f /var/lib/systemd/timers/stamp-lvsnap*
  journalctl -q --rotate && journalctl -q --vacuum-time=1s
  systemctl daemon-reload
  DEBIAN_FRONTEND=noninteractive dpkg -i "$LVSNAP_DEB" > /dev/null 2>&1
}

for f in "$@"; do
  name=$(basename "$f" .sh)
  if ! reset_system; then
    echo "could not reset the system and install $LVSNAP_DEB" > "$RESULTS/$name.log"
    echo 125 > "$RESULTS/$name.status"
    continue
  fi
  start=$(uptime_ms)
  work=$(mktemp -d)
  (cd "$work" && exec timeout -k 5 "$PER_SCENARIO_TIMEOUT" bash -c 'source "$LVSNAP_SCENARIO_LIB"; source "$1"' scenario "$f") \
    > "$RESULTS/$name.log" 2>&1
  rc=$?
  [ $rc = 124 ] && echo "FAIL: scenario timed out after ${PER_SCENARIO_TIMEOUT}s" >> "$RESULTS/$name.log"
  echo $(( $(uptime_ms) - start )) > "$RESULTS/$name.ms"
  echo $rc > "$RESULTS/$name.status"
  echo "scenario $name: exit $rc in $(cat "$RESULTS/$name.ms") ms"
  rm -rf "$work"
done
exit 0
