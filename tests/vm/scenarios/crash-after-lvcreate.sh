# kill -9 of lvsnap right after lvcreate and before its catalog write: the next run reconciles
# with nothing lost and nothing orphaned.
run lvcreate -q -y -L 128M -n home vg0
write_policy '[settings]
timezone = "UTC"
# The scenario slows a tool down with a wrapper there.
tool-path = ["/usr/local/sbin"]

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }'
slow_lvcreate 60
"$LVSNAP" run --now "$(utc_at 0)" > run.log 2>&1 &
pid=$!
for i in $(seq 100); do lv_exists vg0/home-lvsnap-20260302T000000Z && break; sleep 0.2; done
assert_lv_exists vg0/home-lvsnap-20260302T000000Z
run kill -9 $pid
pkill -9 -f /usr/local/sbin/lvcreate || true
wait $pid 2>/dev/null || true
rm /usr/local/sbin/lvcreate
step "the next run reconciles"
out=$("$LVSNAP" run --now "$(utc_at 0)" 2>&1)
echo "$out"
assert_contains "$out" "reconciled: snapshot vg0/home-lvsnap-20260302T000000Z creation confirmed after an interruption"
assert_contains "$out" "home vg0/home: not due"
json=$("$LVSNAP" list --json)
assert_contains "$json" '"name":"home-lvsnap-20260302T000000Z"'
assert_contains "$json" '"unmanaged":[]'
assert_eq "$(tagged_lvs)" "home-lvsnap-20260302T000000Z" "one snapshot, no duplicate"
