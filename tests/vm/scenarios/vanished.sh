# A snapshot removed by hand with lvremove is marked vanished, not an error.
run lvcreate -q -y -L 128M -n home vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }'
"$LVSNAP" run --now "$(utc_at 0)"
"$LVSNAP" run --now "$(utc_at 1)"
run lvremove -q -y vg0/home-lvsnap-20260302T000000Z
out=$("$LVSNAP" run --now "$(utc_at 1)" 2>&1)
echo "$out"
assert_contains "$out" "reconciled: snapshot vg0/home-lvsnap-20260302T000000Z vanished: removed outside lvsnap"
out=$("$LVSNAP" catalog events --limit 3)
echo "$out"
assert_eq "$(tagged_lvs)" "home-lvsnap-20260302T010000Z" "the other snapshot is untouched"
