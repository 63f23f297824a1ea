# lvsnap never touches what it did not create: an untagged snapshot with an lvsnap-looking name
# and a tagged LV without a catalog record both survive every run; the latter is reported.
run lvcreate -q -y -L 128M -n home vg0
run lvcreate -q -y -s -L 8M -n home-lvsnap-20200101T000000Z vg0/home
run lvcreate -q -y -s -L 8M -n home-lvsnap-20200102T000000Z --addtag lvsnap --addtag lvsnap-policy=home vg0/home
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 1 }'
for h in 0 1 2 3; do
  out=$("$LVSNAP" run --now "$(utc_at $h)" 2>&1)
  echo "$out"
done
assert_contains "$out" "unmanaged: vg0/home-lvsnap-20200102T000000Z carries lvsnap's tag but has no catalog record"
assert_lv_exists vg0/home-lvsnap-20200101T000000Z
assert_lv_exists vg0/home-lvsnap-20200102T000000Z
assert_eq "$(tagged_lvs | tr '\n' ' ')" "home-lvsnap-20200102T000000Z home-lvsnap-20260302T030000Z " "tagged LVs"
step "restore-style commands refuse snapshots lvsnap did not create"
expect_status 2 "$LVSNAP" pin home-lvsnap-20200101T000000Z
expect_status 2 "$LVSNAP" pin home-lvsnap-20200102T000000Z
