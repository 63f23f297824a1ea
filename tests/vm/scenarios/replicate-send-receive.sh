# Block-level replication of thin volumes with `lvsnap send | lvsnap receive`, into a thin pool
# of another volume group on another disk: an ext4 volume (128 MiB, partly unprovisioned) and a
# raw one. A whole send, then increments after writes, overwrites and fstrim-ed deletions:
# each replica equals its source snapshot byte for byte, and an increment after 8 MiB written
# carries 8 MiB. A stream for another base, one cut short, a receiver killed mid-stream and a
# base replica made writable leave no replica (the partial copy is removed, at once or by the
# next receive); the pool's metadata snapshot is always released, and one a killed lvsnap left
# reserved is released by the next send — but never one another tool holds.
run lvcreate -q -y -L 384M -T vg0/pool > /dev/null
run lvcreate -q -y -V 128M -T vg0/pool -n fs > /dev/null
run lvcreate -q -y -V 64M -T vg0/pool -n raw > /dev/null
run vgcreate -q -y vgb /dev/vdb > /dev/null
run lvcreate -q -y -L 384M -T vgb/replicas > /dev/null
make_fs ext4 /dev/vg0/fs
mkdir -p /mnt/fs && mount /dev/vg0/fs /mnt/fs
dd if=/dev/urandom of=/mnt/fs/a bs=1M count=12 status=none
dd if=/dev/urandom of=/mnt/fs/b bs=1M count=4 status=none
dd if=/dev/urandom of=/dev/vg0/raw bs=1M count=16 oflag=direct status=none
sync
write_policy '[settings]
timezone = "UTC"

[policy.data]
volumes = ["vg0/fs", "vg0/raw"]
schedule = "0 0 * * *"
keep = { last = 10 }'

newest() { tagged_lvs | grep "^$1-lvsnap-" | sort | tail -1; }
held() { dmsetup status vg0-pool-tpool | awk '{print $7}'; }
sha() {
  lvchange -q -ay -K "$1" > /dev/null
  sha256sum < "/dev/$1" | cut -d' ' -f1
}
# Equal byte for byte (cmp: reading a whole volume twice is slow under emulation, 20-30 s a
# GiB, so the ext4 volume is 128 MiB).
same() {
  lvchange -q -ay -K "vg0/$1" "vgb/$1" > /dev/null
  cmp "/dev/vg0/$1" "/dev/vgb/$1" || fail "the replica vgb/$1 differs from its source vg0/$1"
  echo "vgb/$1 equals vg0/$1 (cmp)"
}
receiving() { lvs --noheadings -o lv_name,lv_tags vgb | grep -c lvsnap-receiving || true; }
# Send and receive; the sender's message (bytes of data) goes to $1.
pipe() {
  local log=$1; shift
  "$LVSNAP" send "$@" 2> "$log" | "$LVSNAP" receive --pool vgb/replicas
}

step "whole: the first replica of each volume equals its snapshot"
lvsnap snapshot data
for v in fs raw; do
  s=$(newest $v)
  out=$(pipe /tmp/sent "vg0/$s") || fail "$out $(cat /tmp/sent)"
  echo "$out"; cat /tmp/sent
  assert_contains "$out" "received $s of vg0/$v into vgb/$s (whole)"
  same "$s"
done
# The SHA-256 of the first raw replica, as an administrator would compare them by hand.
s=$(newest raw); a=$(sha "vg0/$s"); b=$(sha "vgb/$s")
assert_eq "$b" "$a" "SHA-256 of the replica vgb/$s against its source"
echo "vgb/$s equals vg0/$s (SHA-256 $a)"
assert_eq "$(held)" "-" "metadata snapshot held after the sends"
lvs -o lv_name,lv_attr,lv_size,data_percent,lv_tags vgb

step "increments: writes, overwrites, an fstrim-ed deletion"
prev_fs=$(newest fs); prev_raw=$(newest raw)
dd if=/dev/urandom of=/dev/vg0/raw bs=1M count=8 seek=8 oflag=direct status=none
dd if=/dev/urandom of=/mnt/fs/c bs=1M count=3 status=none
dd if=/dev/urandom of=/mnt/fs/a bs=1M count=2 seek=1 conv=notrunc status=none
rm /mnt/fs/b
sync; fstrim /mnt/fs
sleep 1
lvsnap snapshot data
s=$(newest raw)
out=$(pipe /tmp/sent "vg0/$s" --base "$prev_raw") || fail "$out $(cat /tmp/sent)"
echo "$out"; cat /tmp/sent
assert_contains "$out" "(on vgb/$prev_raw)"
bytes=$(grep -o '([0-9]* bytes)' /tmp/sent | tr -dc 0-9)
echo "raw increment after 8 MiB written: $bytes bytes of data"
[ "$bytes" -ge $(( 8 << 20 )) ] && [ "$bytes" -le $(( 10 << 20 )) ] \
  || fail "an increment after 8 MiB written carried $bytes bytes of data (expected 8-10 MiB)"
same "$s"
s=$(newest fs)
out=$(pipe /tmp/sent "vg0/$s" --base "$prev_fs") || fail "$out $(cat /tmp/sent)"
echo "$out"; cat /tmp/sent
assert_contains "$out" "(on vgb/$prev_fs)"
same "$s"
assert_eq "$(held)" "-" "metadata snapshot held after the increments"

step "refused: a stream for another base, one cut short, a base made writable"
count=$(lvs --noheadings vgb | wc -l)
dd if=/dev/urandom of=/dev/vg0/raw bs=1M count=1 oflag=direct status=none
sleep 1
lvsnap snapshot data
s=$(newest raw); first=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep '^raw-lvsnap-' | sort | head -1)
rc=0; out=$(pipe /tmp/sent "vg0/$s" --base "$first" 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of a receive for another base"
assert_contains "$out" "the stream's base is $first of vg0/raw, but the newest replica in vgb/replicas is"
rc=0; out=$("$LVSNAP" send "vg0/$s" --base "$(lvs --noheadings -o lv_name vgb | tr -d ' ' | grep '^raw-' | sort | tail -1)" 2> /dev/null \
  | head -c 300000 | "$LVSNAP" receive --pool vgb/replicas 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of a receive of a stream cut short"
assert_contains "$out" "the stream ends early"
assert_contains "$out" "; the partial copy vgb/lvsnap-receiving-"
assert_contains "$out" " was removed"
assert_eq "$(lvs --noheadings vgb | wc -l)" "$count" "volumes in vgb after the refused streams"
assert_eq "$(receiving)" 0 "partial copies left"
run lvcreate -q -y -L 64M -T vgb/ignoring --discards ignore > /dev/null
run lvcreate -q -y -L 64M -T vgb/unzeroed --zero n > /dev/null
rc=0; out=$("$LVSNAP" send "vg0/$s" 2> /dev/null | "$LVSNAP" receive --pool vgb/ignoring 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of a receive into a pool that ignores discards"
assert_contains "$out" "thin pool vgb/ignoring ignores discards"
rc=0; out=$("$LVSNAP" send "vg0/$s" 2> /dev/null | "$LVSNAP" receive --pool vgb/unzeroed 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status of a receive into a pool that does not zero"
assert_contains "$out" "thin pool vgb/unzeroed does not zero the blocks it provisions"
run lvremove -q -y vgb/ignoring vgb/unzeroed > /dev/null
base=$(lvs --noheadings -o lv_name vgb | tr -d ' ' | grep '^raw-' | sort | tail -1)
run lvchange -q -p rw "vgb/$base"
rc=0; out=$(pipe /tmp/sent "vg0/$s" --base "$base" 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status with a writable base"
assert_contains "$out" "the base replica vgb/$base was made writable"
# Made read-only again, it is still not known to equal its source: a whole send starts anew.
run lvchange -q -p r "vgb/$base"
out=$(pipe /tmp/sent "vg0/$s") || fail "$out $(cat /tmp/sent)"; echo "$out"
assert_contains "$out" "(whole)"
same "$s"

step "a receiver killed mid-stream: no replica; the next receive removes the partial copy"
dd if=/dev/urandom of=/dev/vg0/raw bs=1M count=2 oflag=direct status=none
sleep 1
lvsnap snapshot data
s=$(newest raw); prev=$(lvs --noheadings -o lv_name vgb | tr -d ' ' | grep '^raw-' | sort | tail -1)
mkfifo /tmp/slow
"$LVSNAP" receive --pool vgb/replicas < /tmp/slow > /tmp/recv.out 2>&1 & receiver=$!
# The first 1.5 MB of the stream, then nothing more (but the pipe stays open).
{ "$LVSNAP" send "vg0/$s" --base "$prev" 2> /dev/null | head -c 1500000 || true; sleep 60; } > /tmp/slow & feeder=$!
for _ in $(seq 100); do [ "$(receiving)" = 1 ] && break; sleep 0.2; done
assert_eq "$(receiving)" 1 "partial copies while the stream is received"
sleep 1
kill -9 $receiver; wait $receiver 2> /dev/null || true
kill $feeder 2> /dev/null || true; wait $feeder 2> /dev/null || true
assert_no_lv "vgb/$s"
assert_eq "$(receiving)" 1 "partial copies after the kill"
out=$(pipe /tmp/sent "vg0/$s" --base "$prev") || fail "$out $(cat /tmp/sent)"; echo "$out"
assert_eq "$(receiving)" 0 "partial copies after the next receive"
same "$s"

step "a metadata snapshot a killed lvsnap left reserved is released; another tool's is not"
dmsetup message vg0-pool-tpool 0 reserve_metadata_snap
rc=0; out=$("$LVSNAP" send "vg0/$s" 2>&1 > /dev/null) || rc=$?; echo "$out"
assert_eq "$rc" 1 "exit status while another tool holds the metadata snapshot"
assert_contains "$out" "another tool holds its metadata snapshot"
assert_contains "$out" "dmsetup message vg0-pool-tpool 0 release_metadata_snap"
# As a send killed between reserving and releasing leaves it: the marker names the held root.
held > /var/lib/lvsnap/metadata-snap.vg0-pool-tpool
"$LVSNAP" send "vg0/$s" 2> /tmp/sent > /dev/null || fail "$(cat /tmp/sent)"
cat /tmp/sent
assert_contains "$(cat /tmp/sent)" "released the pool's metadata snapshot an earlier lvsnap left reserved"
assert_eq "$(held)" "-" "metadata snapshot held at the end"
lvs -o lv_name,lv_attr,lv_size,data_percent,lv_tags vgb
