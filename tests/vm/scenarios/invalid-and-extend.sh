# A thick snapshot written past its size becomes invalid: detected, reported and removed per
# policy. One filled past the policy's threshold is extended with lvextend.
run lvcreate -q -y -L 256M -n var vg0
write_policy '[settings]
timezone = "UTC"

[policy.var]
volumes = ["vg0/var"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 10 }
extend-at = 50
extend-by = 50'
lvsnap run --now "$(utc_at 0)"
step "overflow the first snapshot: 32 MiB of new data into an 8 MiB snapshot"
dd if=/dev/urandom of=/dev/vg0/var bs=1M count=32 oflag=direct status=none
assert_eq "$(lv_field vg0/var-lvsnap-20260302T000000Z lv_attr | cut -c5)" I "LVM marks it invalid"
out=$("$LVSNAP" run --now "$(utc_at 1)" 2>&1)
echo "$out"
assert_contains "$out" "reconciled: snapshot vg0/var-lvsnap-20260302T000000Z became invalid"
assert_contains "$out" "remove var-lvsnap-20260302T000000Z (invalid: its copy-on-write space overflowed"
assert_no_lv vg0/var-lvsnap-20260302T000000Z

step "fill the second snapshot past 50%: 5 MiB into 8 MiB"
dd if=/dev/urandom of=/dev/vg0/var bs=1M count=5 seek=64 oflag=direct status=none
echo "fill before: $(lv_field vg0/var-lvsnap-20260302T010000Z data_percent)%"
out=$("$LVSNAP" prune 2>&1)
echo "$out"
assert_contains "$out" "vg0/var-lvsnap-20260302T010000Z is"
assert_contains "$out" "extended by 4 MiB"
assert_eq "$(lv_field vg0/var-lvsnap-20260302T010000Z lv_size)" 12582912 "extended size"
echo "fill after: $(lv_field vg0/var-lvsnap-20260302T010000Z data_percent)%"
