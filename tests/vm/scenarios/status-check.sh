# status and check on real LVM, for the record of what an administrator sees.
run lvcreate -q -y -L 128M -n home vg0
run lvcreate -q -y -L 512M -T vg0/pool
run lvcreate -q -y -V 256M -T vg0/pool -n data
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 3 }

[policy.data]
volumes = ["vg0/data"]
schedule = "0 * * * *"
keep = { last = 3 }'
lvsnap run
lvsnap status
out=$("$LVSNAP" status)
assert_contains "$out" "newest    home-lvsnap-"
assert_contains "$out" "thin pool vg0/pool: data"
out=$("$LVSNAP" check)
echo "$out"
assert_contains "$out" "LVSNAP OK - 2 group(s) fresh |"
