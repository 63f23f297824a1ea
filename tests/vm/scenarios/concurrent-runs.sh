# Two runs at once: the second waits for the lock up to its timeout, then says who holds it;
# no duplicate snapshot.
run lvcreate -q -y -L 128M -n home vg0
write_policy '[settings]
timezone = "UTC"
# The scenario slows a tool down with a wrapper there.
tool-path = ["/usr/local/sbin"]
lock-timeout = "1s"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }'
slow_lvcreate 4
"$LVSNAP" run --now "$(utc_at 0)" > first.log 2>&1 &
first=$!
sleep 1.5
set +e
out=$("$LVSNAP" run --now "$(utc_at 0)" 2>&1)
rc=$?
set -e
echo "$out"
assert_eq "$rc" 1 "second run's exit status"
assert_contains "$out" "another lvsnap is running (pid $first)"
wait $first
cat first.log
rm /usr/local/sbin/lvcreate
out=$("$LVSNAP" run --now "$(utc_at 0)" 2>&1)
assert_contains "$out" "not due"
assert_eq "$(tagged_lvs)" "home-lvsnap-20260302T000000Z" "exactly one snapshot"
