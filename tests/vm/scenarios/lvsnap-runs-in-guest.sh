# The freshly built lvsnap runs in the guest and reads a policy naming the guest's volumes.
step "version"
out=$(lvsnap --version)
assert_contains "$out" "lvsnap "

step "config check against a policy for vg0"
run lvcreate -q -y -L 64M -n home vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
keep = { last = 4, daily = 7 }'
out=$(lvsnap config check --now 2026-01-01T00:30:00Z)
echo "$out"
assert_contains "$out" "volumes   vg0/home"
assert_contains "$out" "next      2026-01-01 01:00:00 UTC"

step "a broken policy is refused with exit 2"
write_policy '[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * *"
keep = { last = 4 }'
expect_status 2 "$LVSNAP" config check
