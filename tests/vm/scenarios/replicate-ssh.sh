# Replication through a real ssh, to an sshd on the guest's loopback, as to a backup host: the
# sending host's key is confined there by a forced command, `lvsnap receive --allow-pool
# vgb/replicas`, with root logins allowed for forced commands only. Through it `lvsnap run`
# sends whole and then increments, prunes the replicas, verifies one and restores from one;
# the same key gets no shell, no other pool, no other configuration, no volume that is not a
# replica, and makes no volume but replicas.
run lvcreate -q -y -L 128M -T vg0/pool > /dev/null
run lvcreate -q -y -V 32M -T vg0/pool -n db > /dev/null
run vgcreate -q -y vgb /dev/vdb > /dev/null
run lvcreate -q -y -L 128M -T vgb/replicas > /dev/null
# A volume of the backup host's own, in the same pool.
run lvcreate -q -y -V 8M -T vgb/replicas -n own > /dev/null
run lvcreate -q -y -V 8M -T vg0/pool -n secret > /dev/null
dd if=/dev/urandom of=/dev/vg0/db bs=1M count=8 oflag=direct status=none

# The backup host: sshd on 127.0.0.1:2222 and an lvsnap configuration of its own.
mkdir -p /etc/lvsnap/remote /etc/ssh /run/sshd /root/.ssh
chmod 700 /root/.ssh
printf '[settings]\ncatalog = "/var/lib/lvsnap/remote/catalog.db"\nruntime-dir = "/run/lvsnap/remote"\n' \
  > /etc/lvsnap/remote/lvsnap.toml
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
cat > /etc/ssh/sshd_config << 'EOF'
ListenAddress 127.0.0.1:2222
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin forced-commands-only
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
EOF
/usr/sbin/sshd -t -f /etc/ssh/sshd_config || fail "sshd refuses its configuration"
/usr/sbin/sshd -D -f /etc/ssh/sshd_config -E /tmp/sshd.log & sshd=$!
trap 'kill $sshd 2> /dev/null; rm -rf /root/.ssh /etc/ssh/ssh_host_*' EXIT
for _ in $(seq 100); do grep -q "Server listening" /tmp/sshd.log 2> /dev/null && break; sleep 0.1; done
grep -q "Server listening" /tmp/sshd.log || fail "sshd did not start: $(cat /tmp/sshd.log)"
# The sending host: its key, and the backup host's key known beforehand.
ssh-keygen -q -t ed25519 -N '' -C root@db01 -f /root/.ssh/id_ed25519
echo "command=\"$LVSNAP --config /etc/lvsnap/remote/lvsnap.toml receive --allow-pool vgb/replicas\",restrict $(cat /root/.ssh/id_ed25519.pub)" \
  > /root/.ssh/authorized_keys
echo "[127.0.0.1]:2222 $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" > /root/.ssh/known_hosts
SSH=(ssh -p 2222 -o BatchMode=yes root@127.0.0.1)

write_policy '[settings]
timezone = "UTC"

[policy.db]
volumes = ["vg0/db"]
schedule = "0 0 * * *"
keep = { last = 1 }

[policy.db.replicate]
pool = "vgb/replicas"
transport = ["ssh", "-p", "2222", "-o", "BatchMode=yes", "root@127.0.0.1", "lvsnap", "receive"]
keep = { last = 1 }'

snaps() { tagged_lvs vg0 | grep '^db-lvsnap-' || true; }
# Writes $1 MiB at MiB $2 of vg0/db, takes a snapshot, prints its name.
changed_snapshot() {
  dd if=/dev/urandom of=/dev/vg0/db bs=1M count="$1" seek="$2" oflag=direct status=none
  sleep 1
  lvsnap snapshot db > /dev/null
  snaps | tail -1
}
T="vgb/replicas via ssh"

step "lvsnap run replicates through ssh: whole, then the blocks changed"
out=$(lvsnap run) || fail "$out $(cat /tmp/sshd.log)"; echo "$out"
s1=$(snaps)
assert_contains "$out" "replicate db vg0/db -> $T: sent $s1 whole"
assert_replica_equal "$s1"
s2=$(changed_snapshot 4 12)
out=$(lvsnap run) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s2 as the blocks changed since $s1"
assert_contains "$out" "removed replica $s1 (keep rules)"
assert_no_lv "vgb/$s1"
assert_replica_equal "$s2"
out=$(lvsnap replicas) || fail "$out"; echo "$out"
assert_contains "$out" "(base of the next increment)"

step "verify and restore through ssh"
out=$(lvsnap verify --replica "$s2") || fail "$out"; echo "$out"
assert_contains "$out" "replica vgb/$s2 in $T equals vg0/$s2"
out=$(lvsnap restore-replica "$s2" --pool vg0/pool --as db-back) || fail "$out"; echo "$out"
assert_contains "$out" "restored $s2 of vgb/$s2 as vg0/db-back"
a=$(sha256sum < "/dev/vgb/$s2" | cut -d' ' -f1); b=$(sha256sum < /dev/vg0/db-back | cut -d' ' -f1)
assert_eq "$b" "$a" "SHA-256 of the restored volume against the replica"

step "the key runs lvsnap receive for vgb/replicas and nothing else"
refused() {
  local rc=0 out
  out=$("${SSH[@]}" "$1" 2>&1 < /dev/null) || rc=$?
  echo "\$ ssh ... '$1' -> exit $rc: $out"
  [ "$rc" != 0 ] || fail "'$1' was served"
  assert_contains "$out" "$2"
  assert_contains "$out" "this key may only use lvsnap receive for vgb/replicas"
}
refused "id; touch /tmp/pwned" "is not lvsnap receive"
refused "lvsnap receive --pool vgb/replicas --list; touch /tmp/pwned" "unexpected argument '--list;'"
refused "lvsnap receive --pool vgb/replicas --list \$(touch /tmp/pwned)" "unexpected argument"
refused "lvsnap receive --pool vg0/pool --list" "is for another pool"
refused "lvsnap receive --pool vgb/replicas --config /tmp/other.toml --list" "unexpected argument '--config'"
refused "lvsnap receive --allow-pool vg0/pool" "asks for --allow-pool"
[ ! -e /tmp/pwned ] || fail "a command ran through the key"
# Within the pool, only replicas: the backup host's own volume is not the sender's to remove.
rc=0; out=$("${SSH[@]}" lvsnap receive --pool vgb/replicas --remove own 2>&1 < /dev/null) || rc=$?
echo "$out"
assert_eq "$rc" 1 "exit status of removing a volume that is no replica"
assert_contains "$out" "vgb/own is not a replica in vgb/replicas"
assert_lv_exists vgb/own
# Nor can a volume elsewhere be named through a replica's name.
rc=0; "${SSH[@]}" lvsnap receive --pool vgb/replicas --send ../vg0/secret > /tmp/sent 2> /tmp/said < /dev/null || rc=$?
cat /tmp/said
assert_eq "$rc" 1 "exit status of sending a volume outside the pool"
assert_contains "$(cat /tmp/said)" "vgb/../vg0/secret is not a replica in vgb/replicas"
assert_eq "$(stat -c %s /tmp/sent)" 0 "bytes sent of a volume outside the pool"
# A new writable volume (--as) is a restore on the host that asks for it, not the sender's.
"$LVSNAP" send "vg0/$s2" 2> /dev/null | "${SSH[@]}" lvsnap receive --pool vgb/replicas --as planted > /tmp/said 2>&1 || true
cat /tmp/said
assert_contains "$(cat /tmp/said)" "asks for a new volume (--as); this key may only use lvsnap receive for vgb/replicas"
assert_no_lv vgb/planted

step "one stream at a time into a pool: each measures the room left for it"
s4=$(changed_snapshot 1 3)
# A stream that stops after its first bytes (on the backup host itself): received, and
# holding the pool.
# (The send fails once head is gone: `|| true`, or errexit would end the group before sleep.)
{ echo $BASHPID > /tmp/first-group; "$LVSNAP" send "vg0/$s4" 2> /tmp/first-send | head -c 300000 || true; exec sleep 30; } \
  | "$LVSNAP" --config /etc/lvsnap/remote/lvsnap.toml receive --pool vgb/replicas > /tmp/first 2>&1 & first=$!
# (grep -c reads all: with grep -q, lvs could die of SIGPIPE and pipefail say no.)
receiving() { [ "$(lvs --noheadings -o lv_tags vgb | grep -c lvsnap-receiving)" -gt 0 ]; }
for _ in $(seq 150); do receiving && break; sleep 0.2; done
receiving || fail "the first stream was never being received: $(cat /tmp/first) / $(cat /tmp/first-send)"
rc=0; out=$("$LVSNAP" send "vg0/$s4" 2> /dev/null | "${SSH[@]}" lvsnap receive --pool vgb/replicas 2>&1) || rc=$?
echo "$out"
assert_eq "$rc" 1 "exit status of a second stream into the pool"
assert_contains "$out" "another stream is being received into vgb/replicas (pid "
kill "$(cat /tmp/first-group)" $first; wait $first 2> /dev/null || true
# The first one's partial copy is gone once its end is.
for _ in $(seq 100); do receiving || break; sleep 0.2; done
cat /tmp/first
assert_no_lv "vgb/$s4"
out=$(lvsnap replicate db) || fail "$out"; echo "$out"
assert_contains "$out" "sent $s4 as the blocks changed since $s2"
assert_replica_equal "$s4"
