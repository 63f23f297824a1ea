# The catalog is lost: `catalog rebuild` restores management of the tagged snapshots, pins
# included, and pruning goes on from there.
run lvcreate -q -y -L 128M -n home vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 2 }'
for h in 0 1; do "$LVSNAP" run --now "$(utc_at $h)" > /dev/null; done
lvsnap pin home-lvsnap-20260302T000000Z
"$LVSNAP" run --now "$(utc_at 2)"
run rm -f /var/lib/lvsnap/catalog.db /var/lib/lvsnap/catalog.db-wal /var/lib/lvsnap/catalog.db-shm
out=$("$LVSNAP" list)
echo "$out"
assert_contains "$out" "no snapshots managed by lvsnap"
out=$("$LVSNAP" catalog rebuild)
echo "$out"
assert_contains "$out" "3 snapshot(s) adopted"
lvsnap list
out=$("$LVSNAP" run --now "$(utc_at 3)")
echo "$out"
assert_contains "$out" "remove home-lvsnap-20260302T010000Z"
assert_eq "$(tagged_lvs | tr '\n' ' ')" "home-lvsnap-20260302T000000Z home-lvsnap-20260302T020000Z home-lvsnap-20260302T030000Z " "pinned one kept"
