# Replication by policy: `lvsnap run` replicates each new snapshot of a thin volume into a thin
# pool on another disk, through a transport argv that starts another process with its own
# configuration, catalog and lock — as `ssh backup01 lvsnap receive` would. Each replica equals
# its source snapshot; an increment after 8 MiB written carries 8 MiB; replicas are pruned by
# their own keep rules, and the base of the next increment is kept on both sides. A sender
# killed mid-stream leaves no replica and the next run sends from the same base. A newest
# replica removed or made writable on the target is refused with the reason; --full sends afresh.
run lvcreate -q -y -L 256M -T vg0/pool > /dev/null
run lvcreate -q -y -V 64M -T vg0/pool -n db > /dev/null
run vgcreate -q -y vgb /dev/vdb > /dev/null
run lvcreate -q -y -L 256M -T vgb/replicas > /dev/null
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=12 oflag=direct status=none

# The other host: its own configuration, catalog and lock, reached through a program.
mkdir -p /etc/lvsnap/remote
printf '[settings]\ncatalog = "/var/lib/lvsnap/remote/catalog.db"\nruntime-dir = "/run/lvsnap/remote"\n' \
  > /etc/lvsnap/remote/lvsnap.toml
mkdir -p /usr/local/sbin
cat > /usr/local/sbin/backup-host << EOF
#!/bin/sh
# A stream (not a list or a removal) waits while /tmp/slow-receive exists.
case "\$*" in *--list*|*--remove*) ;; *) [ -e /tmp/slow-receive ] && sleep 60 ;; esac
exec $LVSNAP --config /etc/lvsnap/remote/lvsnap.toml "\$@"
EOF
chmod 755 /usr/local/sbin/backup-host
write_policy '[settings]
timezone = "UTC"
metrics-file = "/var/lib/lvsnap/metrics.prom"

[policy.db]
volumes = ["vg0/db"]
schedule = "0 0 * * *"
keep = { last = 1 }

[policy.db.replicate]
pool = "vgb/replicas"
transport = ["/usr/local/sbin/backup-host", "receive"]
keep = { last = 2 }'

snaps() { tagged_lvs vg0 | grep '^db-lvsnap-' || true; }
replicas() { lvs --noheadings -o lv_name vgb | tr -d ' ' | grep '^db-lvsnap-' | sort || true; }
held() { dmsetup status vg0-pool-tpool | awk '{print $7}'; }
kill_comm() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2> /dev/null)" = "$1" ] && kill -9 "${p#/proc/}" 2> /dev/null
  done
  true
}
data_bytes() { "$LVSNAP" replicas --json | grep -o '"bytes":[0-9]*' | head -1 | cut -d: -f2; }

# The target as lvsnap names it: the pool and the transport's program (its arguments may hold
# secrets, so they are not stored).
T=$("$LVSNAP" replicas --json | grep -o '"target":"[^"]*"' | head -1 | cut -d'"' -f4)
echo "target: $T"
[[ $T = "vgb/replicas via backup-host" ]] || fail "the target is named '$T'"

step "the first run takes a snapshot and replicates it whole"
out=$(lvsnap run) || fail "$out"; echo "$out"
s1=$(snaps)
assert_contains "$out" "replicate db vg0/db -> $T: sent $s1 whole"
assert_replica_equal "$s1"
assert_eq "$(lv_field "vgb/$s1" lv_attr | cut -c2)" r "permission of the replica"

step "an increment: the base is kept here until a newer snapshot is replicated"
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=8 seek=30 oflag=direct status=none
sleep 1
lvsnap snapshot db > /dev/null
s2=$(snaps | tail -1)
out=$(lvsnap plan) || fail "$out"; echo "$out"
assert_contains "$(echo "$out" | grep "$s1")" "replica-base"
out=$(lvsnap run) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s2 as the blocks changed since $s1"
assert_lv_exists "vg0/$s1"
bytes=$(data_bytes)
echo "increment after 8 MiB written: $bytes bytes of data"
[ "$bytes" -ge $(( 8 << 20 )) ] && [ "$bytes" -le $(( 10 << 20 )) ] \
  || fail "an increment after 8 MiB written carried $bytes bytes of data (expected 8-10 MiB)"
assert_replica_equal "$s2"

step "replicas are pruned by their own keep rules; the old base goes here"
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=2 seek=4 oflag=direct status=none
sleep 1
lvsnap snapshot db > /dev/null
s3=$(snaps | tail -1)
out=$(lvsnap run) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s3 as the blocks changed since $s2"
assert_contains "$out" "removed replica $s1 (keep rules)"
assert_no_lv "vg0/$s1"
assert_eq "$(replicas | tr '\n' ' ')" "$s2 $s3 " "replicas on the target"
assert_replica_equal "$s3"
out=$(lvsnap replicas) || fail "$out"; echo "$out"
assert_contains "$out" "$s3"
assert_contains "$out" "(base of the next increment)"
assert_contains "$out" "lag: "
rc=0; out=$(/usr/local/sbin/backup-host receive --pool vgb/replicas --remove "$s3" 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of removing the newest replica"
assert_contains "$out" "is the newest replica of its volume, the base of the next increment"
assert_lv_exists "vgb/$s3"

step "a sender killed mid-stream: no replica; the next run sends from the same base"
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=1 oflag=direct status=none
sleep 1
lvsnap snapshot db > /dev/null
s4=$(snaps | tail -1)
touch /tmp/slow-receive
"$LVSNAP" replicate db > /tmp/replicate.out 2>&1 & sender=$!
# The receiving end of the stream is started and waits (only a stream sleeps): under way.
for _ in $(seq 100); do running sleep && break; sleep 0.2; done
running sleep || fail "the receiving end never started: $(cat /tmp/replicate.out)"
sleep 1
kill -9 $sender; wait $sender 2> /dev/null || true
rm /tmp/slow-receive; kill_comm backup-host; kill_comm sleep
assert_no_lv "vgb/$s4"
assert_eq "$(held)" "-" "metadata snapshot held after the kill"
out=$(lvsnap run) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s4 as the blocks changed since $s3"
assert_replica_equal "$s4"
out=$(lvsnap replicas) || fail "$out"; echo "$out"
assert_contains "$out" "interrupted: the target holds no such replica"

step "the newest replica removed on the target: refused, naming the replica and its snapshot"
# The prune drops $s3 here: the catalog knows $s4 is replicated, so $s3 is no base any more.
out=$(lvsnap prune) || fail "$out"; echo "$out"
assert_no_lv "vg0/$s3"
run lvremove -q -y "vgb/$s4" > /dev/null
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=1 seek=3 oflag=direct status=none
sleep 1
lvsnap snapshot db > /dev/null
s5=$(snaps | tail -1)
rc=0; out=$(lvsnap replicate db 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status with the base replica removed"
assert_contains "$out" "the newest replica vgb/$s3 on the target is of snapshot $s3 of vg0/db, which is gone here"
assert_contains "$out" "lvsnap replicate --full db"
out=$(lvsnap replicate --full db) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s5 whole"
assert_replica_equal "$s5"

step "a base made writable on the target is refused; --full sends afresh"
run lvchange -q -p rw "vgb/$s5"
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=1 seek=2 oflag=direct status=none
sleep 1
lvsnap snapshot db > /dev/null
s6=$(snaps | tail -1)
rc=0; out=$(lvsnap replicate db 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status with a writable base"
assert_contains "$out" "the newest replica vgb/$s5 on the target is writable"
assert_no_lv "vgb/$s6"
out=$(lvsnap replicate --full db) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s6 whole"
assert_replica_equal "$s6"

step "verify: SHA-256 range by range on both sides; a changed replica is found"
out=$(lvsnap verify --replica "$s6") || fail "$out"; echo "$out"
assert_contains "$out" "replica vgb/$s6 in $T equals vg0/$s6: SHA-256 of 4 ranges of 16 MiB"
lvchange -q -ay -K "vgb/$s5"
dd if=/dev/urandom of="/dev/vgb/$s5" bs=1M count=1 seek=20 oflag=direct status=none
lvchange -q -an "vgb/$s5"
rc=0; out=$(lvsnap verify --replica "$s5") || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of verifying a changed replica"
assert_contains "$out" "DIFFERS from vg0/$s5 in 1 of 4 ranges: 16777216 bytes at 16777216"

step "status, check and the metrics file tell the replication's lag"
# The three snapshots taken since the last run are one more than max-remove-percent allows.
lvsnap prune --force
out=$(lvsnap run) || fail "$out"; echo "$out"
out=$(lvsnap status) || fail "$out"; echo "$out"
assert_contains "$out" "replica   $s6 in $T (lag "
out=$(lvsnap check) || fail "$out"; echo "$out"
assert_contains "$out" "'db_vg0/db_replica_lag'="
grep '^lvsnap_replica' /var/lib/lvsnap/metrics.prom
assert_contains "$(cat /var/lib/lvsnap/metrics.prom)" "lvsnap_replica_lag_seconds{policy=\"db\",volume=\"vg0/db\",target=\"$T\"}"
assert_contains "$(cat /var/lib/lvsnap/metrics.prom)" "lvsnap_replica_failed{policy=\"db\",volume=\"vg0/db\",target=\"$T\"} 0"

step "restore from a replica: a new volume equal to it, never over an existing one"
out=$(lvsnap restore-replica "$s6" --pool vg0/pool --as db-restored) || fail "$out"; echo "$out"
assert_contains "$out" "restored $s6 of vgb/$s6 as vg0/db-restored"
lvchange -q -ay -K "vgb/$s6"
a=$(sha256sum < "/dev/vgb/$s6" | cut -d' ' -f1); b=$(sha256sum < /dev/vg0/db-restored | cut -d' ' -f1)
assert_eq "$b" "$a" "SHA-256 of the restored volume against the replica"
echo "vg0/db-restored equals vgb/$s6 (SHA-256 $a)"
assert_eq "$(lv_field vg0/db-restored lv_attr | cut -c2)" w "permission of the restored volume"
assert_eq "$(lv_field vg0/db-restored lv_attr | cut -c10)" k "activation skip of the restored volume"
rc=0; out=$(lvsnap restore-replica "$s6" --pool vg0/pool --as db-restored 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of a restore over an existing volume"
assert_contains "$out" "vg0/db-restored exists: a restore makes a new volume and never writes over one"
assert_eq "$(held)" "-" "metadata snapshot held at the end"
assert_eq "$(dmsetup status vgb-replicas-tpool | awk '{print $7}')" "-" "target pool's metadata snapshot held at the end"
lvs -o lv_name,lv_attr,lv_size,data_percent,lv_tags vg0 vgb
