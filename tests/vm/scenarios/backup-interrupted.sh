# A backup stopped mid-copy — by kill -9, then by SIGTERM — leaves nothing behind for long:
# rsync dies with lvsnap, the next run unmounts the snapshot, removes the temporary snapshot and
# the partial generation, and records the backup failed; SIGTERM does all of that at once. The
# target never holds a half generation under a final name.
run lvcreate -q -y -L 512M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n data
make_fs xfs /dev/vg0/data
mkdir -p /mnt/data /mnt/backup && mount /dev/vg0/data /mnt/data
head -c 24M /dev/urandom > /mnt/data/big
for i in $(seq 40); do head -c 100K /dev/urandom > /mnt/data/f$i; done
sync
make_fs ext4 /dev/vdb && mount /dev/vdb /mnt/backup
write_policy '[settings]
timezone = "UTC"
# The scenario slows a tool down with a wrapper there.
tool-path = ["/usr/local/sbin"]

[policy.data]
volumes = ["vg0/data"]
schedule = "0 * * * *"
keep = { last = 3 }
[policy.data.backup]
schedule = "0 2 * * *"
engine = "rsync"
target = "/mnt/backup"
source = "fresh"
keep = { last = 3 }'

# slow_rsync: rsync at 1 MB/s, so that a backup is caught mid-copy (exec keeps lvsnap's
# parent-death signal on rsync itself).
slow_rsync() {
  mkdir -p /usr/local/sbin
  printf '#!/bin/bash\nexec /usr/bin/rsync --bwlimit=1000 "$@"\n' > /usr/local/sbin/rsync
  chmod +x /usr/local/sbin/rsync
}
# wait_mid_copy: until rsync has written into the partial generation.
wait_mid_copy() {
  for _ in $(seq 200); do
    [ -n "$(ls -A /mnt/backup/vg0/data/.*.partial 2> /dev/null)" ] && return 0
    sleep 0.2
  done
  fail "the backup never started copying"
}
partials() { ls -A /mnt/backup/vg0/data | grep partial || true; }

step "kill -9 of lvsnap mid-backup"
slow_rsync
"$LVSNAP" backup data > backup.log 2>&1 &
pid=$!
wait_mid_copy
running rsync || fail "no rsync running mid-copy (the check below would prove nothing)"
assert_contains "$(cat /proc/mounts)" "/run/lvsnap/backup/"
temp=$(tagged_lvs | grep '^data-lvsnap-')
gen=${temp#data-lvsnap-}
run kill -9 $pid
wait $pid 2> /dev/null || true
sleep 2
! running rsync || fail "rsync outlived the killed lvsnap"
step "what the kill left: a mount, the temporary snapshot, a partial generation"
assert_contains "$(cat /proc/mounts)" "/run/lvsnap/backup/"
assert_lv_exists vg0/$temp
assert_eq "$(partials)" ".$gen.partial"
[ -e /mnt/backup/vg0/data/$gen ] && fail "a half generation under its final name"
rm /usr/local/sbin/rsync

step "the next run cleans up, then backs up"
out=$("$LVSNAP" run 2>&1)
echo "$out"
assert_contains "$out" "undid a leftover mount of vg0/$temp"
assert_contains "$out" "backup vg0/data@$gen was interrupted: marked failed, partial files removed"
assert_contains "$out" "removed the temporary snapshot vg0/$temp of that backup"
assert_contains "$out" "backup data vg0/data: wrote "
assert_not_contains "$(cat /proc/mounts)" "/run/lvsnap/"
assert_no_lv vg0/$temp
assert_eq "$(partials)" "" "partial files"
[ -e /mnt/backup/vg0/data/$gen ] && fail "the interrupted generation exists under its final name"
assert_eq "$(tagged_lvs | wc -l)" 1 "only the run's own snapshot is left (the backup's temporary one is gone)"
list=$("$LVSNAP" backups --all)
echo "$list"
assert_contains "$list" "interrupted: lvsnap stopped mid-backup; its partial files were removed"
assert_eq "$("$LVSNAP" backups | grep -c complete)" 1 "one complete backup"
lvsnap verify --all

step "SIGTERM mid-backup: lvsnap stops the copy and cleans up itself"
# New data, so that rsync has something to copy rather than hard-link.
head -c 24M /dev/urandom > /mnt/data/big2; sync
slow_rsync
"$LVSNAP" backup data > term.log 2>&1 &
pid=$!
wait_mid_copy
temp=$(tagged_lvs | grep '^data-lvsnap-' | sort | tail -1)
run kill -TERM $pid
rc=0; wait $pid || rc=$?
cat term.log
assert_eq "$rc" 1 "exit status after SIGTERM"
assert_contains "$(cat term.log)" "FAILED: interrupted: rsync stopped by a signal"
! running rsync || fail "rsync outlived SIGTERM"
assert_not_contains "$(cat /proc/mounts)" "/run/lvsnap/"
assert_no_lv vg0/$temp
assert_eq "$(partials)" "" "partial files after SIGTERM"
assert_eq "$("$LVSNAP" backups --all | grep -c failed)" 2 "both interrupted backups recorded failed"
rm /usr/local/sbin/rsync

step "a run during a long backup is not blocked by it and leaves it alone"
rm /mnt/data/big2; head -c 8M /dev/urandom > /mnt/data/big3; sync
slow_rsync
"$LVSNAP" backup data > long.log 2>&1 &
pid=$!
wait_mid_copy
rc=0; out=$("$LVSNAP" run 2>&1) || rc=$?
echo "$out"
assert_eq "$rc" 0 "exit status of a run during a backup"
assert_not_contains "$out" "another lvsnap is running"
assert_contains "$out" "is in progress (pid $pid)"
running rsync || fail "the run stopped the backup's copy"
assert_contains "$(cat /proc/mounts)" "/run/lvsnap/backup/"
rc=0; wait $pid || rc=$?
cat long.log
assert_eq "$rc" 0 "exit status of the long backup"
assert_contains "$(cat long.log)" "backup data vg0/data: wrote "
assert_not_contains "$(cat /proc/mounts)" "/run/lvsnap/"
rm /usr/local/sbin/rsync
lvsnap verify --all
