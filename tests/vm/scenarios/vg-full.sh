# A volume group with too little free space: a clear error for that policy, the other policy's
# snapshot is still taken, and the exit status is non-zero.
run vgcreate -q -y small /dev/vdb
run lvcreate -q -y -L 64M -n db small
run lvcreate -q -y -L 64M -n home vg0
# Fill small but for one extent: no 16 MiB snapshot fits.
run lvcreate -q -y -l 100%FREE -n filler small
run lvreduce -q -y -l -1 small/filler
write_policy '[settings]
timezone = "UTC"

[policy.db]
volumes = ["small/db"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 2 }

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 2 }'
set +e
out=$("$LVSNAP" run --now "$(utc_at 0)" 2>&1)
rc=$?
set -e
echo "$out"
assert_eq "$rc" 1 "exit status"
assert_contains "$out" "db small/db: error: snapshot failed: volume group small has 4 MiB free, too little for a 16 MiB snapshot of small/db"
assert_contains "$out" "home vg0/home: create home-lvsnap-20260302T000000Z"
assert_lv_exists vg0/home-lvsnap-20260302T000000Z
assert_eq "$(tagged_lvs small)" "" "nothing created in the full group"
