# A snapshot set with freeze = true, on a kernel (Debian's backports) where LVM can snapshot a
# filesystem frozen with fsfreeze: with the hooks holding the writer, its number is the same in
# both members of every set; without them, the freeze alone makes each set one instant of the
# writer (a equals b or is one ahead); the filesystems are frozen only while the lvcreates run (the window is printed beside
# the same two lvcreates run bare); and a failing lvcreate, a hung one (freeze-timeout) and a
# kill -9 of lvsnap mid-set each leave the origins writable and nothing of the set behind.
. "$(dirname "$LVSNAP_SCENARIO_LIB")/sets-lib.sh"
step "kernel $(uname -r)"

step "a writer keeps one number in both volumes; frozen sets hold the same number in both"
start_writer
pair_policy "$hooks
freeze = true"
windows=""
for i in 1 2 3; do
  sleep 1
  out=$("$LVSNAP" snapshot pair 2>&1) || fail "$out"; echo "$out"
  assert_contains "$out" "frozen "
  windows="$windows $(grep -o 'frozen [0-9]* ms' <<< "$out" | cut -d' ' -f2)"
done
kill -0 $writer || fail "the writer died"
writable 2 || fail "the origins are not writable after the sets"
stop_writer
check_sets 3

step "no hooks, the writer running on: the freeze alone makes each set one instant"
before=$(set_ids)
start_writer
pair_policy "freeze = true"
for i in 1 2; do
  sleep 1
  out=$("$LVSNAP" snapshot pair 2>&1) || fail "$out"; echo "$out"
done
stop_writer
check_instant $(comm -13 <(echo "$before" | sort) <(set_ids | sort))

step "freeze window against bare lvcreates of the same two origins"
bare=""
for i in 1 2 3; do
  t0=$(date +%s%N)
  lvcreate -q -y -s -L 16M -n bare-a vg0/a > /dev/null
  lvcreate -q -y -s -n bare-b vg0/b > /dev/null
  bare="$bare $(( ($(date +%s%N) - t0) / 1000000 ))"
  lvremove -q -y vg0/bare-a vg0/bare-b > /dev/null
done
median() { tr ' ' '\n' | grep . | sort -n | sed -n 2p; }
echo "FREEZE_WINDOW_MS=$(echo $windows | median) (runs:$windows)"
echo "BARE_LVCREATE_PAIR_MS=$(echo $bare | median) (runs:$bare)"

count=$(tagged_lvs | wc -l)
pair_policy "freeze = true
freeze-timeout = \"3s\""

step "a failing lvcreate: the set fails, nothing of it remains, the origins are writable"
fake_lvcreate 'echo "  Volume group vg0 has insufficient free space" >&2; exit 5'
sleep 1
rc=0; out=$("$LVSNAP" snapshot pair 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status"
assert_contains "$out" "member vg0/b could not be created"
assert_contains "$out" "the 1 member(s) created were removed"
writable 3 || fail "an origin stayed frozen after the failed set"
assert_eq "$(tagged_lvs | wc -l)" "$count" "snapshots after the failed set"

step "a hung lvcreate: thawed at freeze-timeout while LVM still runs; the set is given up"
fake_lvcreate 'sleep 10'
sleep 1
"$LVSNAP" snapshot pair > /tmp/hung.out 2>&1 & pid=$!
sleep 7
kill -0 $pid 2> /dev/null || fail "lvsnap ended before the hung lvcreate: $(cat /tmp/hung.out)"
writable 2 || fail "the origins are still frozen past freeze-timeout"
rc=0; wait $pid || rc=$?; cat /tmp/hung.out
assert_eq "$rc" 1 "exit status"
assert_contains "$(cat /tmp/hung.out)" "stayed frozen past freeze-timeout (3 s)"
assert_eq "$(tagged_lvs | wc -l)" "$count" "snapshots after the timed-out set"

step "kill -9 while frozen: the guard thaws at once; the next run removes what the set left"
pair_policy "freeze = true
freeze-timeout = \"60s\""
fake_lvcreate 'exec sleep 20'
sleep 1
"$LVSNAP" snapshot pair > /tmp/killed.out 2>&1 & pid=$!
for _ in $(seq 200); do [ "$(tagged_lvs | wc -l)" -gt "$count" ] && break; sleep 0.1; done
sleep 1
touch /mnt/a/blocked & blocked=$!
sleep 1
kill -0 $blocked 2> /dev/null || fail "the origins were not frozen while the set was taken"
left=$(tagged_lvs | grep "^a-lvsnap-" | sort | tail -1)
echo "created before the kill: $left"
kill -9 $pid; wait $pid 2> /dev/null || true
for _ in $(seq 20); do kill -0 $blocked 2> /dev/null || break; sleep 0.1; done
kill -0 $blocked 2> /dev/null && fail "the origins stayed frozen after lvsnap was killed"
writable 2 || fail "the origins are not writable after lvsnap was killed"
rm -f /usr/local/sbin/lvcreate
out=$("$LVSNAP" prune 2>&1) || fail "$out"; echo "$out"
assert_contains "$out" "removed vg0/$left: set pair."
assert_contains "$out" "is incomplete: a member was never created"
assert_no_lv "vg0/$left"
