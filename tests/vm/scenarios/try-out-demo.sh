# The newcomers' try-out (tests/vm/try.sh --scripted) works: demo volumes, policy, session.
out=$(bash "$VM_DIR/guest/demo.sh" --scripted 2>&1)
echo "$out"
assert_contains "$out" "ok: /etc/lvsnap/lvsnap.toml (2 policies)"
assert_contains "$out" "taken 744, removed 711, kept 33"
assert_contains "$out" "home vg0/home: would create home-lvsnap-"
assert_contains "$out" "data vg0/data: create data-lvsnap-"
assert_contains "$out" "created home-lvsnap-"
assert_contains "$out" "before the demo upgrade"
assert_contains "$out" "=== demo session done"
assert_lv_exists vg0/home
assert_lv_exists vg0/data
