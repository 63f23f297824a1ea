# Restores that cannot escape, and state others cannot read. A user plants links to /etc, to
# ../../.., a chain and a directory link in a volume, names files with a newline, an escape
# sequence and a raw \xff byte, and hard-links one file three times; lvsnap runs with umask 000.
# From a snapshot, an rsync generation and an archive: a restore through a link is refused and
# names it (a canary outside the volume never appears), links come back as links, a link in the
# destination is never written through, existing parents stay exactly as they were, hostile
# names are printed escaped on one line and restore by their raw bytes, one name of a hard-linked
# file restores alone; everything lvsnap creates is private.
# The scenario's own directories say their modes; lvsnap gets umask 000.
umask 000
run lvcreate -q -y -L 48M -n home vg0
run lvcreate -q -y -L 48M -n mail vg0
make_fs ext4 /dev/vg0/home; make_fs ext4 /dev/vg0/mail; make_fs ext4 /dev/vdb
mkdir -p /mnt/backup /mnt/home /mnt/mail
mount /dev/vdb /mnt/backup
mount /dev/vg0/home /mnt/home; mount /dev/vg0/mail /mnt/mail
echo "CANARY: the host's secret" > /etc/canary-secret

for v in home mail; do
  d=/mnt/$v
  mkdir -p "$d/alice/real" "$d/odd" "$d/hl"
  echo "alice's file" > "$d/alice/real/file"
  ln -s /etc "$d/alice/docs"
  ln -s ../../.. "$d/alice/up"
  ln -s up "$d/alice/chain"
  ln -s real "$d/alice/dirlink"
  printf 'newline\n' > "$d/odd/"$'new\nline'
  printf 'escape\n' > "$d/odd/"$'esc\e[2Jape'
  printf 'byte\n' > "$d/odd/"$'bad\xffbyte'
  echo shared > "$d/hl/a"; ln "$d/hl/a" "$d/hl/b"; ln "$d/hl/a" "$d/hl/c"
done
sync
write_policy '[settings]
timezone = "UTC"

[policy.home]
volumes = ["vg0/home"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 5 }
pre = ["/bin/true", "--user=backup", "--password=secret"]
[policy.home.backup]
schedule = "0 2 * * *"
engine = "rsync"
target = "/mnt/backup"
keep = { last = 5 }

[policy.mail]
volumes = ["vg0/mail"]
schedule = "0 * * * *"
size = "16M"
keep = { last = 5 }
[policy.mail.backup]
schedule = "0 2 * * *"
engine = "archive"
target = "/mnt/backup"
keep = { last = 5 }'

declare -A SNAP GEN
for v in home mail; do
  SNAP[$v]=$("$LVSNAP" snapshot $v | sed -n 's/.* created //p')
  out=$("$LVSNAP" backup $v); echo "$out"
  GEN[$v]=vg0/$v@$(echo "$out" | sed -n 's/.* wrote \([0-9TZ]*\) from .*/\1/p')
done
SOURCES="${SNAP[home]} ${GEN[home]} ${GEN[mail]}"
echo "sources: $SOURCES"

step "a path through a planted link is refused, naming the link; nothing outside is read"
n=0
for src in $SOURCES; do
  for spec in alice/docs/canary-secret:alice/docs alice/up/etc/canary-secret:alice/up \
              alice/chain/etc/canary-secret:alice/chain alice/dirlink/file:alice/dirlink; do
    path=${spec%%:*}; link=${spec#*:}; n=$((n + 1))
    for dry in "" --dry-run; do
      rc=0; out=$("$LVSNAP" restore $src $path --to /tmp/out$n $dry 2>&1) || rc=$?
      echo "$out"
      assert_eq "$rc" 2 "restore $src $path $dry"
      assert_contains "$out" "goes through $link, a symbolic link"
    done
    [ ! -e /tmp/out$n ] || ! grep -rqs CANARY /tmp/out$n || fail "the canary leaked into /tmp/out$n"
  done
done

step "links are restored as links"
for src in $SOURCES; do
  d=/tmp/links-$RANDOM
  lvsnap restore $src alice --to $d > /dev/null
  assert_eq "$(readlink $d/alice/docs)" /etc
  assert_eq "$(readlink $d/alice/up)" ../../..
  assert_eq "$(readlink $d/alice/chain)" up
  assert_eq "$(readlink $d/alice/dirlink)" real
  assert_eq "$(cat $d/alice/real/file)" "alice's file"
  ! grep -rqs CANARY $d || fail "the canary was read through a link from $src"
done

step "a link in the destination is in the way, and never written through"
mkdir -p /outside
for src in $SOURCES; do
  d=/tmp/dest-$RANDOM; mkdir -m 755 $d; ln -s /outside $d/alice
  rc=0; out=$("$LVSNAP" restore $src alice/real/file --to $d 2>&1) || rc=$?
  echo "$out"; assert_eq "$rc" 2 "restore over a planted link without --force"
  assert_contains "$out" "replaces a symbolic link in the way"
  lvsnap restore $src alice/real/file --to $d --force > /dev/null
  [ -d $d/alice ] && [ ! -L $d/alice ] || fail "$d/alice should now be a directory"
  assert_eq "$(ls -A /outside)" "" "/outside after restoring through a planted link"
done
ln -s /tmp/somewhere /tmp/linkdest
rc=0; out=$("$LVSNAP" restore ${SNAP[home]} alice/real/file --to /tmp/linkdest 2>&1) || rc=$?
echo "$out"; assert_eq "$rc" 2 "--to a symbolic link"; assert_contains "$out" "is a symbolic link"
mkdir -m 755 /tmp/userdest; chown 2000:2000 /tmp/userdest
rc=0; out=$("$LVSNAP" restore ${SNAP[home]} alice/real/file --to /tmp/userdest 2>&1) || rc=$?
echo "$out"; assert_eq "$rc" 2 "--to a directory uid 2000 owns"; assert_contains "$out" "belongs to uid 2000"

step "existing parents stay exactly as they were"
for src in $SOURCES; do
  # On ext4: the guest's tmpfs keeps no user xattrs.
  d=/mnt/backup/parents-$RANDOM; mkdir -m 755 $d; mkdir $d/alice
  chown 2000:2000 $d/alice; chmod 0700 $d/alice; setfattr -n user.keep -v me $d/alice
  touch -d '2021-01-02 03:04:05' $d/alice
  before=$(stat -c '%u:%g %a %y' $d/alice; getfattr -d $d/alice 2> /dev/null)
  lvsnap restore $src alice/real/file --to $d > /dev/null
  after=$(stat -c '%u:%g %a %y' $d/alice; getfattr -d $d/alice 2> /dev/null)
  assert_eq "$after" "$before" "alice/ after restoring alice/real/file from $src"
  assert_eq "$(cat $d/alice/real/file)" "alice's file"
done

step "hostile names: escaped on one line each, JSON exact, restored by their raw bytes"
out=$("$LVSNAP" restore ${GEN[home]} odd --to /tmp/odd-plan --dry-run); echo "$out"
assert_contains "$out" "\$'odd/new\\nline'"
assert_contains "$out" "\$'odd/esc\\e[2Jape'"
assert_contains "$out" "\$'odd/bad\\xffbyte'"
assert_not_contains "$out" $'\e' "the plan"
assert_eq "$(echo "$out" | grep -c '^  ')" 3 "one line per file"
json=$("$LVSNAP" restore ${GEN[home]} odd --to /tmp/odd-plan --dry-run --json); echo "$json"
assert_contains "$json" '"odd/new\nline"'
assert_contains "$json" '"odd/esc\u001b[2Jape"'
assert_contains "$json" '{"hex":"6f64642f626164ff62797465"}'
for src in $SOURCES; do
  d=/tmp/odd-$RANDOM
  for name in $'new\nline' $'esc\e[2Jape' $'bad\xffbyte'; do
    lvsnap restore $src "odd/$name" --to $d > /dev/null
    cmp "$d/odd/$name" "/mnt/home/odd/$name" 2> /dev/null || cmp "$d/odd/$name" "/mnt/mail/odd/$name"
  done
done
rm "/mnt/home/odd/"$'esc\e[2Jape'; sync
out=$("$LVSNAP" diff ${SNAP[home]}); echo "$out" | cat -v
assert_contains "$out" "- \$'odd/esc\\e[2Jape'"
assert_not_contains "$out" $'\e' "diff"
gendir=/mnt/backup/vg0/home/${GEN[home]#*@}
printf 'tampered\n' > "$gendir/odd/"$'new\nline'
rc=0; out=$("$LVSNAP" verify ${GEN[home]} 2>&1) || rc=$?; echo "$out"
assert_contains "$out" "changed: \$'odd/new\\nline'"

step "one name of a file with three hard links, alone, from the archive"
lvsnap restore ${GEN[mail]} hl/b --to /tmp/hl > /dev/null
assert_eq "$(cat /tmp/hl/hl/b)" shared
assert_eq "$(ls /tmp/hl/hl)" b

step "everything lvsnap created is private, under umask 000"
lvsnap mount ${SNAP[home]} > /dev/null
open=$(find /var/lib/lvsnap /run/lvsnap -maxdepth 3 ! -path '/run/lvsnap/mnt/vg0/*' -perm /077 -printf '%m %p\n')
lvsnap umount ${SNAP[home]} > /dev/null
backups=$(find /mnt/backup/vg0 -maxdepth 2 \( -type f -o -path '*/vg0' -o -path '*/vg0/home' -o -path '*/vg0/mail' \) -perm /077 -printf '%m %p\n')
ls -la /var/lib/lvsnap /run/lvsnap /mnt/backup/vg0/home /mnt/backup/vg0/mail
assert_eq "$open$backups" "" "files and directories others can read"

step "the hook's password is in no event"
out=$("$LVSNAP" catalog events --limit 200; "$LVSNAP" catalog events --limit 200 --json)
assert_contains "$out" "/bin/true [2 argument(s), sha256"
assert_not_contains "$out" secret "catalog events"

step "a catalog truncated to half its size: LVM alone answers, writers refuse, rebuild recovers"
db=/var/lib/lvsnap/catalog.db
truncate -s $(( $(stat -c %s $db) / 2 )) $db
out=$("$LVSNAP" list); echo "$out"
assert_contains "$out" "is damaged"
assert_contains "$out" "${SNAP[home]}"
rc=0; "$LVSNAP" check || rc=$?; assert_eq "$rc" 2 "check with a damaged catalog"
rc=0; out=$("$LVSNAP" run 2>&1) || rc=$?; echo "$out"
assert_eq "$rc" 2 "run with a damaged catalog"; assert_contains "$out" "lvsnap catalog rebuild"
out=$("$LVSNAP" catalog rebuild); echo "$out"
assert_contains "$out" "set the damaged catalog aside"
assert_contains "$out" "adopted backup ${GEN[home]} (rsync"
assert_contains "$out" "adopted backup ${GEN[mail]} (archive"
out=$("$LVSNAP" backups); echo "$out"
assert_contains "$out" "${GEN[mail]#*@}"
lvsnap restore ${GEN[mail]} alice/real/file --to /tmp/after-rebuild > /dev/null
assert_eq "$(cat /tmp/after-rebuild/alice/real/file)" "alice's file"
