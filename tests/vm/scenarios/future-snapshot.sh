# A snapshot dated a day ahead (the clock jumped forward while it was taken; made here with a
# future lvsnap-time tag and adopted by `catalog rebuild`): the next run still takes its
# scheduled snapshot, prunes the others by the keep rules, keeps the future one and says so;
# `check` is CRITICAL naming it, and `status` does not count it as fresh.
run lvcreate -q -y -L 64M -n home vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "*/5 * * * * *"
size = "8M"
keep = { last = 2 }
max-remove-percent = 100'
for i in 1 2 3; do lvsnap snapshot home; sleep 1; done
ahead=$(( $(date +%s) + 86400 ))
future=home-lvsnap-$(date -u -d "@$ahead" +%Y%m%dT%H%M%SZ)
run lvcreate -q -y -s -L 8M -n "$future" --addtag lvsnap --addtag lvsnap-policy=home \
  --addtag "lvsnap-time=$ahead" vg0/home
out=$("$LVSNAP" catalog rebuild); echo "$out"
assert_contains "$out" "adopted vg0/$future"
sleep 5
out=$("$LVSNAP" run); echo "$out"
assert_contains "$out" "home vg0/home: create home-lvsnap-"
assert_contains "$out" "$future is dated"
assert_contains "$out" "in the future"
assert_contains "$out" "remove home-lvsnap-"
assert_lv_exists "vg0/$future"
assert_eq "$(tagged_lvs | grep -vc "$future")" 2 "real snapshots left by keep last = 2"
rc=0; out=$("$LVSNAP" check) || rc=$?; echo "$out"
assert_eq "$rc" 2 "check exit status"
assert_contains "$out" "LVSNAP CRITICAL"
assert_contains "$out" "snapshot $future is dated"
out=$("$LVSNAP" status); echo "$out"
assert_contains "$out" "FUTURE    $future"
assert_not_contains "$(grep newest <<< "$out")" "$future" "status's newest"
