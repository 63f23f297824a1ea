# lvsnap daemon on real LVM: a per-second schedule creates and prunes real snapshots for ~10 s;
# SIGTERM ends it with status 0 and leaves no stray intent; run from a "timer" in between takes
# no second snapshot for a scheduled time.
run lvcreate -q -y -L 128M -n home vg0
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "*/4 * * * * *"
size = "8M"
keep = { last = 3 }'
"$LVSNAP" daemon > daemon.log 2>&1 &
pid=$!
step "daemon running; timer-mode runs in between"
for i in $(seq 1 6); do
  sleep 2
  "$LVSNAP" run > /dev/null 2>&1 || true
done
run kill -TERM $pid
rc=0; wait $pid || rc=$?
cat daemon.log
assert_eq "$rc" 0 "daemon exit status after SIGTERM"
assert_contains "$(cat daemon.log)" "daemon stopped"

step "it created and pruned real snapshots"
events=$("$LVSNAP" catalog events --limit 200)
created=$(echo "$events" | grep -c "exit 0 .*lvcreate --snapshot" || true)
removed=$(echo "$events" | grep -c "exit 0 .*lvremove --yes" || true)
echo "created $created, removed $removed, left: $(tagged_lvs | tr '\n' ' ')"
[ "$created" -ge 3 ] || fail "only $created snapshots in ~12 s"
[ "$removed" -ge 1 ] || fail "nothing pruned"
[ "$(tagged_lvs | wc -l)" -le 3 ] || fail "more than keep = { last = 3 }"

step "no stray intent: nothing for the next run to reconcile"
out=$("$LVSNAP" plan 2>&1)
assert_not_contains "$out" "reconciled:"

step "one snapshot per scheduled time, whoever took it"
times=$(echo "$events" | grep -o 'lvcreate --snapshot .*--addtag lvsnap-time=[0-9]*' | grep -o 'lvsnap-time=[0-9]*' | cut -d= -f2)
echo "snapshot times: $(echo $times)"
dups=$(for t in $times; do echo $(( t / 4 )); done | sort | uniq -d)
assert_eq "$dups" "" "scheduled periods with two snapshots"
