# Nothing temporary outlives its purpose: a backup's `source = "fresh"` snapshot survives neither
# a kill -9 between its lvcreate and the backup's record, nor an lvremove that fails once. It is
# listed while it exists, and the next run removes it.
run lvcreate -q -y -L 48M -n home vg0
make_fs ext4 /dev/vg0/home; make_fs ext4 /dev/vdb
mkdir -p /mnt/backup && mount /dev/vdb /mnt/backup
write_policy '[settings]
timezone = "UTC"
# The scenario slows lvcreate and breaks lvremove once with wrappers there.
tool-path = ["/usr/local/sbin"]

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }
[policy.home.backup]
schedule = "0 2 * * *"
engine = "rsync"
target = "/mnt/backup"
source = "fresh"
keep = { last = 3 }'

step "kill -9 between taking the temporary snapshot and recording the backup"
slow_lvcreate 60
"$LVSNAP" backup home > backup.log 2>&1 &
pid=$!
for i in $(seq 150); do [ -n "$(tagged_lvs)" ] && break; sleep 0.2; done
temp=$(tagged_lvs); [ -n "$temp" ] || fail "no temporary snapshot appeared"
run kill -9 $pid
pkill -9 -f /usr/local/sbin/lvcreate || true
wait $pid 2>/dev/null || true
rm /usr/local/sbin/lvcreate
assert_lv_exists vg0/$temp
out=$("$LVSNAP" list); echo "$out"
assert_contains "$out" "$temp"
out=$("$LVSNAP" run 2>&1); echo "$out"
assert_contains "$out" "removed the leftover temporary snapshot vg0/$temp"
assert_no_lv vg0/$temp

step "an lvremove that fails once"
printf '#!/bin/bash\nif [ ! -e /tmp/lvremove-failed ]; then touch /tmp/lvremove-failed; echo "  simulated failure" >&2; exit 5; fi\nexec /usr/sbin/lvremove "$@"\n' > /usr/local/sbin/lvremove
chmod 755 /usr/local/sbin/lvremove
sleep 1
tagged_lvs > before
out=$("$LVSNAP" backup home 2>&1); echo "$out"
assert_contains "$out" "cannot remove the temporary snapshot"
tagged_lvs > after
# (the guest has no /dev/fd for <(…))
temp=$(comm -13 before after); [ -n "$temp" ] || fail "the temporary snapshot should still be there"
out=$("$LVSNAP" list); echo "$out"
assert_contains "$out" "temporary, for a backup"
out=$("$LVSNAP" run 2>&1); echo "$out"
assert_contains "$out" "removed the leftover temporary snapshot vg0/$temp"
assert_no_lv vg0/$temp
