# sets-lib.sh — what the snapshot-set scenarios share (sourced after lib.sh): a thick ext4 vg0/a
# on /mnt/a and a thin xfs vg0/b on /mnt/b, policy `pair` (their set), and a writer that keeps
# the same number in both volumes.
run lvcreate -q -y -L 64M -n a vg0
run lvcreate -q -y -L 256M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n b
make_fs ext4 /dev/vg0/a
make_fs xfs /dev/vg0/b
mkdir -p /mnt/a /mnt/b /mnt/peek
mount /dev/vg0/a /mnt/a
mount /dev/vg0/b /mnt/b

# pair_policy EXTRA: policy `pair`, the set of vg0/a and vg0/b, with EXTRA keys (and the keep
# rules in PAIR_KEEP, when set).
pair_policy() {
  write_policy "[settings]
timezone = \"UTC\"
# fake_lvcreate puts a wrapper there.
tool-path = [\"/usr/local/sbin\"]

[policy.pair]
volumes = [\"vg0/a\", \"vg0/b\"]
set = true
schedule = \"0 0 * * *\"
size = \"16M\"
max-thick-per-origin = 20
keep = { ${PAIR_KEEP:-last = 3, weekly = 2} }
$1"
}
# member_sums NAME: sums of a member, read through lvsnap mount.
member_sums() {
  "$LVSNAP" mount "$1" /mnt/peek > /dev/null
  tree_sums /mnt/peek
  "$LVSNAP" umount "$1" > /dev/null
}
# member_file NAME FILE: one file of a member.
member_file() {
  "$LVSNAP" mount "$1" /mnt/peek > /dev/null
  cat "/mnt/peek/$2"
  "$LVSNAP" umount "$1" > /dev/null
}
set_ids() { "$LVSNAP" list --json | grep -o '"id":"[^"]*"' | cut -d'"' -f4; }

# The writer: one number, written to both volumes in turn, over and over. While /tmp/hold
# exists it stops between two numbers and says so with /tmp/held (what the pre hook waits
# for); the post hook removes /tmp/hold.
hooks='pre = ["sh", "-c", "touch /tmp/hold; while [ ! -e /tmp/held ]; do sleep 0.05; done"]
post = ["rm", "-f", "/tmp/hold"]'
start_writer() {
  rm -f /tmp/stop-writer /tmp/hold /tmp/held
  cat > /root/writer <<'WRITER'
#!/bin/bash
n=0
while [ ! -e /tmp/stop-writer ]; do
  if [ -e /tmp/hold ]; then
    touch /tmp/held
    while [ -e /tmp/hold ]; do sleep 0.05; done
    rm -f /tmp/held
  fi
  n=$((n + 1)); echo $n > /mnt/a/seq; echo $n > /mnt/b/seq
done
WRITER
  chmod +x /root/writer
  /root/writer & writer=$!
  sleep 1
}
stop_writer() { touch /tmp/stop-writer; rm -f /tmp/hold; wait $writer; }

# check_sets N: there are N sets, each member pair holds the same number, rising set by set.
check_sets() {
  local sets last=0 id t na nb
  sets=$(set_ids); assert_eq "$(echo $sets | wc -w)" "$1" "sets taken"
  for id in $sets; do
    t=${id#pair.}
    na=$(member_file a-lvsnap-$t seq); nb=$(member_file b-lvsnap-$t seq)
    echo "set $id: a holds $na, b holds $nb"
    assert_eq "$na" "$nb" "the number in both members of set $id"
    [ "$na" -gt "$last" ] || fail "set $id holds $na, not after $last"
    last=$na
  done
}

# check_instant IDS…: each set's members hold numbers of one instant of the writer, which
# writes a before b: a equals b, or is one ahead (members taken moments apart let b run ahead).
check_instant() {
  local id t na nb
  for id in "$@"; do
    t=${id#pair.}
    na=$(member_file a-lvsnap-$t seq); nb=$(member_file b-lvsnap-$t seq)
    echo "set $id: a holds $na, b holds $nb"
    [ $((na - nb)) -eq 0 ] || [ $((na - nb)) -eq 1 ] || fail "set $id is no single instant: a holds $na, b holds $nb"
  done
}

# writable SECONDS: a write to both origins ends within SECONDS (a write to a frozen filesystem
# blocks, unkillably, until the thaw: it is watched, not timed out).
writable() {
  touch /mnt/a/probe /mnt/b/probe & local p=$!
  for _ in $(seq $(( $1 * 10 ))); do kill -0 $p 2> /dev/null || { wait $p; return; }; sleep 0.1; done
  return 1
}

# fake_lvcreate BODY: lvsnap's lvcreate of member b runs BODY instead; others are real (the
# runner removes the wrapper after the scenario).
fake_lvcreate() {
  mkdir -p /usr/local/sbin
  printf '#!/bin/bash\ncase "$*" in *b-lvsnap-*) %s ;; esac\nexec /usr/sbin/lvcreate "$@"\n' "$1" > /usr/local/sbin/lvcreate
  chmod +x /usr/local/sbin/lvcreate
}
