# A failing pre hook skips only its own policy's snapshot; the run exits non-zero; post still
# runs for the policy whose pre ran.
run lvcreate -q -y -L 128M -n home vg0
run lvcreate -q -y -L 128M -n var vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }
pre = ["/bin/sh", "-c", "echo database refused the flush >&2; exit 7"]
post = ["/bin/sh", "-c", "echo post $LVSNAP_POLICY $LVSNAP_TAKEN >> /tmp/hooks.log"]

[policy.var]
volumes = ["vg0/var"]
schedule = "0 * * * *"
size = "8M"
keep = { last = 3 }
pre = ["/bin/sh", "-c", "echo pre $LVSNAP_POLICY $LVSNAP_SNAPSHOT $LVSNAP_PHASE >> /tmp/hooks.log"]
post = ["/bin/sh", "-c", "echo post $LVSNAP_POLICY $LVSNAP_TAKEN >> /tmp/hooks.log"]'
rm -f /tmp/hooks.log
set +e
out=$("$LVSNAP" run --now "$(utc_at 0)" 2>&1)
rc=$?
set -e
echo "$out"
assert_eq "$rc" 1 "exit status"
# The hook is named by its program and a digest of its arguments (they may hold secrets).
assert_contains "$out" "home vg0/home: error: snapshot failed: pre hook \`/bin/sh [2 argument(s), sha256 "
assert_contains "$out" "\` exited with status 7: database refused the flush; no snapshot of vg0/home taken"
assert_contains "$out" "var vg0/var: create var-lvsnap-20260302T000000Z"
assert_eq "$(tagged_lvs | tr '\n' ' ')" "var-lvsnap-20260302T000000Z " "only var's snapshot"
assert_eq "$(cat /tmp/hooks.log)" "post home no
pre var var-lvsnap-20260302T000000Z pre
post var yes" "hook calls"
