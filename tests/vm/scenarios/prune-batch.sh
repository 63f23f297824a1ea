# A prune removes a volume's snapshots with one lvremove. LVM refuses one of them (held open
# by another process after lvsnap looked) and, as lvm2 2.03.16 does, stops there, having
# removed those before it: lvsnap reads back which are gone, records each rightly, tries each
# one left alone (so that one stuck snapshot never holds back the rest), names the one that is
# still refused, `list` agrees with LVM, and the next prune removes it.
run lvcreate -q -y -L 32M -n home vg0
policy() {  # KEEP
  write_policy "[settings]
timezone = \"UTC\"
tool-path = [\"/usr/local/sbin\"]

[policy.home]
volumes = [\"vg0/home\"]
schedule = \"0 * * * *\"
size = \"4M\"
keep = { last = $1 }
max-remove-percent = 100"
}
policy 4
for h in 0 1 2 3; do "$LVSNAP" run --now "$(utc_at $h)" > /dev/null; done
snap() { echo "home-lvsnap-$(utc_at "$1" | tr -d ':-')"; }

step "one of three refused: each one lvsnap says it removed is gone, each left is named"
policy 1
# lvremove, with the second-oldest snapshot held open by another process while it runs (LVM
# closes descriptors it inherits, so the holder cannot be lvremove itself).
mkdir -p /usr/local/sbin
cat > /usr/local/sbin/lvremove << EOF
#!/bin/bash
sleep 60 < /dev/vg0/$(snap 1) & holder=\$!
for _ in \$(seq 100); do [ "\$(readlink /proc/\$holder/fd/0)" = "\$(readlink -f /dev/vg0/$(snap 1))" ] && break; sleep 0.05; done
/usr/sbin/lvremove "\$@"; rc=\$?
kill \$holder
# What the first (the batch's) lvremove left.
[ -e /run/after-batch ] || lvs --noheadings -o lv_name vg0 | tr -d ' ' > /run/after-batch
exit \$rc
EOF
rm -f /run/after-batch
chmod 755 /usr/local/sbin/lvremove
rc=0; out=$("$LVSNAP" prune 2>&1) || rc=$?
echo "$out"
rm /usr/local/sbin/lvremove
assert_eq "$rc" 1 "exit status of a prune LVM partly refused"
assert_contains "$out" "removing $(snap 1) failed"
list=$("$LVSNAP" list); echo "$list"
events=$("$LVSNAP" catalog events --limit 8); echo "$events"
removals=$(grep -o 'lvremove --yes [^ ]*\( vg0/[^ ]*\)*' <<< "$events")
echo "$removals"
assert_eq "$(head -1 <<< "$removals")" "lvremove --yes vg0/$(snap 2) vg0/$(snap 1) vg0/$(snap 0)" "the one lvremove of the prune"
batch_gone=0
for h in 0 1 2; do
  if grep -qx "$(snap $h)" /run/after-batch; then
    grep -qx "lvremove --yes vg0/$(snap $h)" <<< "$removals" || fail "$(snap $h), left by the batch, was not tried alone"
  else
    batch_gone=$((batch_gone + 1))
  fi
done
echo "removed by the batch LVM partly refused: $batch_gone of 3"
[ $batch_gone -ge 1 ] || fail "the batch removed none of the three: the partial outcome is not exercised"
assert_lv_exists "vg0/$(snap 1)"; assert_lv_exists "vg0/$(snap 3)"
assert_no_lv "vg0/$(snap 0)"; assert_no_lv "vg0/$(snap 2)"
assert_contains "$list" "$(snap 1)"
assert_not_contains "$list" "$(snap 0)"
assert_not_contains "$list" "$(snap 2)"
for h in 0 2; do assert_contains "$out" "remove $(snap $h) (not among the 1 newest)"; done
assert_not_contains "$out" "removing $(snap 0) failed"
assert_not_contains "$out" "removing $(snap 2) failed"

step "the next prune removes what is left"
out=$("$LVSNAP" prune 2>&1) || fail "$out"; echo "$out"
assert_no_lv "vg0/$(snap 1)"
assert_eq "$(tagged_lvs | tr '\n' ' ')" "$(snap 3) " "snapshots left"
