# The manifest says everything a restore must reproduce, and the engines agree with it.
# - A damaged rsync generation (chown, chmod, an xattr, a symlink retargeted to non-UTF-8 bytes,
#   a broken hard link): verify names each difference.
# - `exclude = ["cache[1]"]` on a tree with cache1, cache[1], a*b, a socket and a fifo: the
#   manifest, the rsync generation and the archive leave out exactly cache[1]; the archive's
#   manifest lists the socket as not stored; verify passes on both engines.
# - A 5000-byte deep path and a file lvsnap cannot read (run without CAP_DAC_OVERRIDE): the
#   backup is partial (exit 1), names both, and every other file is backed up and verified.
run lvcreate -q -y -L 32M -n home vg0
run lvcreate -q -y -L 32M -n mail vg0
make_fs ext4 /dev/vg0/home; make_fs ext4 /dev/vg0/mail; make_fs ext4 /dev/vdb
mkdir -p /mnt/backup /mnt/home /mnt/mail
mount /dev/vdb /mnt/backup; mount /dev/vg0/home /mnt/home; mount /dev/vg0/mail /mnt/mail
command -v setpriv > /dev/null || fail "setpriv (util-linux) is needed"
# A socket, made by the one daemon the guest has that listens on one (busybox syslogd on
# /dev/log), and copied into each volume (cp makes sockets with mknod).
busybox syslogd -n -O /dev/null & syslogd=$!
for i in $(seq 50); do [ -S /dev/log ] && break; sleep 0.1; done
[ -S /dev/log ] || fail "no socket to copy"
for v in home mail; do
  d=/mnt/$v
  mkdir -p "$d/cache1" "$d/cache[1]" "$d/a*b" "$d/meta"
  echo keep > "$d/cache1/f"; echo drop > "$d/cache[1]/f"; echo star > "$d/a*b/f"
  mkfifo "$d/fifo"
  cp -a /dev/log "$d/sock"
  echo secret > "$d/meta/secret"; chmod 600 "$d/meta/secret"
  echo open > "$d/meta/open"
  echo attr > "$d/meta/attr"
  ln -s target "$d/meta/link"
  echo shared > "$d/meta/h1"; ln "$d/meta/h1" "$d/meta/h2"
done
kill $syslogd; wait $syslogd 2> /dev/null || true; rm -f /dev/log
sync
policy() {
  printf '[policy.%s]\nvolumes = ["vg0/%s"]\nschedule = "0 * * * *"\nsize = "8M"\nkeep = { last = 5 }\n' $1 $1
  printf '[policy.%s.backup]\nschedule = "0 2 * * *"\nengine = "%s"\ntarget = "/mnt/backup"\nkeep = { last = 5 }\nexclude = ["cache[1]"]\n' $1 $2
}
write_policy "$(printf '[settings]\ntimezone = "UTC"\n\n'; policy home rsync; policy mail archive)"

step "exclude means the same to the manifest, rsync and tar"
declare -A GEN
for v in home mail; do
  lvsnap snapshot $v > /dev/null; sleep 1
  out=$("$LVSNAP" backup $v); echo "$out"
  assert_not_contains "$out" "PARTIAL"
  GEN[$v]=$(echo "$out" | sed -n 's/.* wrote \([0-9TZ-]*\) from .*/\1/p')
  m=/mnt/backup/vg0/$v/${GEN[$v]}.manifest
  assert_contains "$(cat $m)" " cache1/f"
  assert_contains "$(cat $m)" " a*b/f"
  assert_not_contains "$(cat $m)" "cache[1]"
  lvsnap verify vg0/$v@${GEN[$v]}
done
g=/mnt/backup/vg0/home/${GEN[home]}
[ -f "$g/cache1/f" ] && [ -f "$g/a*b/f" ] && [ -p "$g/fifo" ] && [ -S "$g/sock" ] || fail "rsync left out more than cache[1]"
[ ! -e "$g/cache[1]" ] || fail "rsync copied the excluded cache[1]"
listing=$(tar --zstd -tf /mnt/backup/vg0/mail/${GEN[mail]}.tar.zst)
assert_contains "$listing" "./cache1/f"
assert_contains "$listing" "./a*b/f"
assert_contains "$listing" "./fifo"
assert_not_contains "$listing" "cache[1]"
assert_contains "$(cat /mnt/backup/vg0/mail/${GEN[mail]}.manifest)" "! not-stored sock"
assert_contains "$("$LVSNAP" backups --policy mail)" "not-stored: sock"

step "verify names each change to a generation"
chown 1000:1000 "$g/meta/secret"
chmod 600 "$g/meta/open"
setfattr -n user.planted -v x "$g/meta/attr"
ln -sfn $'\xff\xfe' "$g/meta/link"
cp -p "$g/meta/h2" "$g/meta/h2.new" && mv "$g/meta/h2.new" "$g/meta/h2"
out=$("$LVSNAP" verify vg0/home@${GEN[home]} 2>&1) && fail "verify passed a damaged generation: $out"
echo "$out"
assert_contains "$out" "changed: meta/secret (owner 0:0 → 1000:1000"
assert_contains "$out" "changed: meta/open (mode 644 → 600"
assert_contains "$out" "changed: meta/attr (extended attributes/ACLs added"
assert_contains "$out" "changed: meta/link (link target target → \$'\\xff\\xfe'"
assert_contains "$out" "changed: meta/h2 (no longer a hard link of meta/h1"

# The generation is the next backup's --link-dest: give back what lvsnap must read there.
chown 0:0 "$g/meta/secret"

step "one bad file never fails a volume: a 5000-byte path and an unreadable file"
cd /mnt/home
for i in $(seq 25); do n=$(printf 'd%.0s' $(seq 199))$i; mkdir "$n"; cd "$n"; done
echo deep > deep-file
cd /
echo private > /mnt/home/meta/unreadable; chown 1000 /mnt/home/meta/unreadable; chmod 000 /mnt/home/meta/unreadable
echo fine > /mnt/home/meta/fine
sync
lvsnap snapshot home > /dev/null; sleep 1
# Root without the capability to override file permissions: the file owned by uid 1000, mode
# 000, cannot be opened (as a damaged or foreign-labelled file on a real server cannot).
got=0
out=$(setpriv --bounding-set=-dac_override,-dac_read_search --inh-caps=-dac_override,-dac_read_search \
  "$LVSNAP" backup home 2>&1) || got=$?
echo "$out"
assert_eq "$got" 1 "exit status of a partial backup"
assert_contains "$out" "PARTIAL, wrote"
assert_contains "$out" "meta/unreadable: unreadable, not backed up"
assert_contains "$out" "path too long for the backup target, not backed up"
gen=$(echo "$out" | sed -n 's/.* wrote \([0-9TZ-]*\) from .*/\1/p')
list=$("$LVSNAP" backups --policy home); echo "$list"
assert_contains "$list" "partial"
assert_contains "$list" "unreadable: meta/unreadable"
assert_contains "$list" "too-long: "
[ "$(cat /mnt/backup/vg0/home/$gen/meta/fine)" = fine ] || fail "the readable file was not backed up"
[ ! -e /mnt/backup/vg0/home/$gen/meta/unreadable ] || fail "the unreadable file is in the generation"
lvsnap verify vg0/home@$gen
lvsnap restore vg0/home@$gen meta/fine --to /tmp/partial-restore > /dev/null
assert_eq "$(cat /tmp/partial-restore/meta/fine)" fine "a file restored from a partial backup"
