# Off-host backups into restic repositories: a REST server on the guest's own loopback (rclone
# serve restic, a real server) and a local-path repository. A thick ext4 and a thin xfs volume
# are backed up; restic's listing equals the snapshot's tree; an incremental backup adds about
# what changed; two hosts share one repository and each forgets only its own snapshots (one made
# by hand survives); files with a newline in their name and a hard-linked pair are restored
# byte-identical; verify --read-data passes, then fails after one byte of a pack is flipped; an
# edited manifest is caught; bad credentials are refused before anything is mounted; a stopped
# server fails the backup (exit 1) while the other policies' snapshots are still taken; kill -9
# mid-backup is cleaned up by the next run, the dead restic's lock removed; a full repository
# fails the backup, saying so.
run lvcreate -q -y -L 40M -n home vg0
run lvcreate -q -y -L 96M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n mail
run lvcreate -q -y -L 16M -n web vg0
make_fs ext4 /dev/vg0/home; make_fs xfs /dev/vg0/mail; make_fs ext4 /dev/vg0/web
mkdir -p /mnt/home /mnt/mail /mnt/web
mount /dev/vg0/home /mnt/home; mount /dev/vg0/mail /mnt/mail; mount /dev/vg0/web /mnt/web
for d in /mnt/home /mnt/mail; do
  mkdir -p "$d/etc" "$d/data" "$d/tmp"
  printf 'secret\n' > "$d/etc/shadow"; chmod 640 "$d/etc/shadow"; chown 0:42 "$d/etc/shadow"
  touch -d '2020-02-29 12:34:56.123456789' "$d/etc/shadow"
  head -c 2M /dev/urandom > "$d/data/blob"; ln "$d/data/blob" "$d/data/blob-hardlink"
  ln -s ../etc/shadow "$d/data/shadow-link"
  printf 'first line\n' > "$d/data/two
lines"
  for i in $(seq 40); do echo "file $i" > "$d/data/f$i"; done
  echo junk > "$d/tmp/junk"
done
echo page > /mnt/web/index.html
sync

# The repository server: rclone serving a directory, on loopback only.
mkdir -p /srv/rest /srv/local /etc/lvsnap
serve() {
  HOME=/root rclone serve restic --addr 127.0.0.1:8000 /srv/rest > /tmp/rclone.log 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    (exec 3<> /dev/tcp/127.0.0.1/8000) 2> /dev/null && return 0
    sleep 0.1
  done
  fail "rclone serve restic did not start: $(cat /tmp/rclone.log)"
}
serve
printf 'correct horse battery staple\n' > /etc/lvsnap/restic.pass
chmod 600 /etc/lvsnap/restic.pass
REST=rest:http://127.0.0.1:8000/
export RESTIC_PASSWORD_FILE=/etc/lvsnap/restic.pass RESTIC_CACHE_DIR=/tmp/restic-cache
run restic -r $REST init > /dev/null
run restic -r /srv/local init > /dev/null

policies() {  # HOST CATALOG
  printf '[settings]\ntimezone = "UTC"\ncatalog = "%s"\ntool-path = ["/usr/local/sbin"]\n\n' "$2"
  # Two catalogs ("hosts") keep snapshots of the one home: more thick ones than the default 5.
  printf '[policy.home]\nvolumes = ["vg0/home"]\nschedule = "0 * * * *"\nsize = "16M"\nkeep = { last = 5 }\nmax-thick-per-origin = 12\n'
  printf '[policy.home.backup]\nschedule = "0 2 * * *"\nengine = "restic"\nrepository = "%s"\n' $REST
  printf 'password-file = "/etc/lvsnap/restic.pass"\nhost = "%s"\nexclude = ["tmp"]\nkeep = { last = 2 }\n\n' "$1"
  printf '[policy.mail]\nvolumes = ["vg0/mail"]\nschedule = "0 * * * *"\nkeep = { last = 5 }\n'
  printf '[policy.mail.backup]\nschedule = "0 2 * * *"\nengine = "restic"\nrepository = "/srv/local"\n'
  printf 'password-file = "/etc/lvsnap/restic.pass"\nsource = "fresh"\nkeep = { last = 2 }\n\n'
  printf '[policy.web]\nvolumes = ["vg0/web"]\nschedule = "0 * * * *"\nsize = "8M"\nkeep = { last = 5 }\n'
}
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"
id_of() { echo "$1" | sed -n 's/.*"restic":{[^}]*"id":"\([0-9a-f]*\)".*/\1/p'; }

step "thick ext4 and thin xfs into the REST and the local repository"
# Files changed in the last 2 s before a snapshot are read again by the next backup (their
# change time could still repeat); these are older, so the next backup keeps their digests.
sleep 2
lvsnap snapshot home > /dev/null; sleep 1
out=$("$LVSNAP" backup home --json); echo "$out"
ID=$(id_of "$out"); [ ${#ID} = 64 ] || fail "no full restic snapshot ID in: $out"
out=$("$LVSNAP" backup mail --json); echo "$out"
MAIL_ID=$(id_of "$out"); [ ${#MAIL_ID} = 64 ] || fail "no restic snapshot ID for mail"
assert_eq "$(tagged_lvs | grep -c mail-lvsnap || true)" 0 "the temporary snapshot of mail is gone"
# restic's listing equals the snapshot's tree (tmp/ excluded).
snap=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep '^home-lvsnap' | tail -1)
mkdir -p /mnt/snap && mount -o "$(snapshot_mount_opts ext4)" /dev/vg0/$snap /mnt/snap
want=$(cd /mnt/snap && find . -mindepth 1 -path ./tmp -prune -o -printf '/%P\n' | sort)
got=$(restic -r $REST ls --json "$ID" | sed -n 's/.*"path":"\([^"]*\)".*"struct_type":"node".*/\1/p' | sed 's/\\n/\n/' | sort)
umount /mnt/snap
assert_eq "$got" "$want" "restic ls of the snapshot"
tags=$(restic -r $REST snapshots --json "$ID")
assert_contains "$tags" '"hostname":"web01"'
assert_contains "$tags" '"lvsnap-policy=home"'
assert_contains "$tags" '"lvsnap-volume=vg0/home"'
assert_contains "$tags" "\"lvsnap-snapshot=$snap\""
# The snapshot's own time, not the time of the backup.
stamp=$(echo "$snap" | sed 's/.*-lvsnap-//')
assert_contains "$tags" "\"time\":\"$(date -u -d "$(echo $stamp | sed 's/\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)Z/\1-\2-\3 \4:\5:\6/')" +%Y-%m-%dT%H:%M:%SZ)\""
list=$("$LVSNAP" backups --json)
assert_contains "$list" "\"restic_id\":\"$ID\""

step "an incremental backup adds about what changed"
head -c 1M /dev/urandom > /mnt/home/data/new; sync
lvsnap snapshot home > /dev/null; sleep 1
out=$("$LVSNAP" backup home --json); echo "$out"
added=$(echo "$out" | sed -n 's/.*"data_added":\([0-9]*\).*/\1/p')
[ "$added" -le $((2 * 1048576)) ] || fail "the second backup added $added bytes for 1 MiB written"
[ "$added" -ge 1048576 ] || fail "the second backup added only $added bytes for 1 MiB of random data"
# restic compared with the previous snapshot: the files it had already are not read again.
assert_contains "$out" '"files_new":1,"files_changed":0,"files_unmodified":44'
# Nor does lvsnap read most of them for the manifest: their digests are the previous backup's
# but for a sixteenth read again each backup (verify --read-data below compares every digest
# with what restic stored).
linked=$(echo "$out" | sed -n 's/.*"linked":\([0-9]*\).*/\1/p')
[ "$linked" -ge 36 ] && [ "$linked" -lt 44 ] || fail "$linked of 44 unchanged files' digests kept, not 36-43"

step "a file whose content changed under unchanged signs fails the backup; the next reads all"
# What restic's change test (and the digest cache's) cannot see, made visible: the cache says
# data/f1 held other bytes, to be read again ("?"). The backup reads it, finds the difference,
# fails, and asks the next backup to read every file, restic with --force.
digests=/var/lib/lvsnap/restic/home/vg0/home/.digests
grep -q ' data/f1$' $digests || fail "data/f1 is not in the digest cache"
sed -i -E "s/^([0-9]+ [0-9.]+ [0-9]+ [0-9.]+ )\??[0-9a-f]{64}( data\/f1)\$/\1?$(printf '0%.0s' $(seq 64))\2/" $digests
grep -q " ?0000000000000000000000000000000000000000000000000000000000000000 data/f1$" $digests || fail "the cache edit did not take"
lvsnap snapshot home > /dev/null; sleep 1
out=$("$LVSNAP" backup home 2>&1) && fail "a backup with a stale file passed: $out"
echo "$out"
assert_contains "$out" "1 file(s) hold other content than their unchanged inode, change time, size and mtime say (data/f1)"
[ -e /var/lib/lvsnap/restic/home/vg0/home/.read-all ] || fail "no mark for the next backup"
[ -e $digests ] && fail "the cache outlived the failure"
out=$("$LVSNAP" backup home --json); echo "$out"
assert_contains "$out" '"status":"done"'
assert_contains "$out" '"files_unmodified":0'
[ -e /var/lib/lvsnap/restic/home/vg0/home/.read-all ] && fail "the mark outlived the backup that read everything"

step "restore from restic: a name with a newline, a hard-linked pair"
out=$("$LVSNAP" backups --json)
GEN=$(echo "$out" | grep -o '"backup":"vg0/home@[0-9TZ-]*"' | tail -1 | cut -d'"' -f4)
lvsnap restore "$GEN" "data/two
lines" data/blob data/blob-hardlink etc/shadow --to /tmp/r > /dev/null
cmp "/tmp/r/data/two
lines" "/mnt/home/data/two
lines"
cmp /tmp/r/data/blob /mnt/home/data/blob
assert_eq "$(stat -c %i /tmp/r/data/blob)" "$(stat -c %i /tmp/r/data/blob-hardlink)" "the hard-linked pair is one inode"
assert_eq "$(stat -c '%a %u:%g %y' /tmp/r/etc/shadow)" "$(stat -c '%a %u:%g %y' /mnt/home/etc/shadow)" "metadata of etc/shadow"

step "verify --read-data passes; a flipped byte of a pack fails it; an edited manifest is caught"
lvsnap verify "$GEN" --read-data
MAILGEN=$("$LVSNAP" backups --json | grep -o '"backup":"vg0/mail@[0-9TZ-]*"' | tail -1 | cut -d'"' -f4)
lvsnap verify "$MAILGEN" --read-data=100%
pack=$(find /srv/local/data -type f -size +1M | head -1)
[ -n "$pack" ] || fail "no pack file in /srv/local"
byte=$(od -An -tx1 -j 4096 -N 1 "$pack" | tr -d ' ')
printf "\\x$(printf %02x $(( 0x$byte ^ 0xff )))" | dd of="$pack" bs=1 seek=4096 conv=notrunc status=none
out=$("$LVSNAP" verify "$MAILGEN" --read-data=100% 2>&1) && fail "verify passed a damaged pack: $out"
echo "$out"
assert_contains "$out" "FAILED"
manifest=$(ls /var/lib/lvsnap/restic/home/vg0/home/*.manifest | tail -1)
sed -i 's/^f 100640 0 42 /f 100600 0 42 /' "$manifest"
grep -q '^f 100600 0 42 ' "$manifest" || fail "the manifest edit did not take"
out=$("$LVSNAP" verify "$GEN" 2>&1) && fail "verify passed an edited manifest: $out"
assert_contains "$out" "manifest file altered"

step "credentials: a wrong password and a world-readable password file are refused before any mount"
printf 'wrong\n' > /etc/lvsnap/wrong.pass; chmod 600 /etc/lvsnap/wrong.pass
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db | sed 's|password-file = "/etc/lvsnap/restic.pass"|password-file = "/etc/lvsnap/wrong.pass"|')"
lvsnap snapshot home > /dev/null; sleep 1
out=$("$LVSNAP" backup home 2>&1) && fail "a wrong password was accepted"
assert_contains "$out" "does not open restic repository $REST"
chmod 644 /etc/lvsnap/wrong.pass
out=$("$LVSNAP" backup home 2>&1) && fail "a world-readable password file was accepted"
assert_contains "$out" "lets others read or change it"
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"
# The password file that opened the repository before, rewritten with a wrong password: its
# change is seen and the repository checked again before the mount ("backing up" is logged
# after it).
cp -p /etc/lvsnap/restic.pass /etc/lvsnap/good.pass
printf 'wrong\n' > /etc/lvsnap/restic.pass
out=$("$LVSNAP" -v backup home 2>&1) && fail "a rewritten wrong password was accepted"
assert_contains "$out" "does not open restic repository $REST"
case $out in *"backing up"*) fail "the rewritten password was found wrong only after mounting: $out" ;; esac
cp -p /etc/lvsnap/good.pass /etc/lvsnap/restic.pass
assert_eq "$(grep -c ' /run/lvsnap/backup' /proc/mounts)" 0 "mounts left by refused backups"

step "two hosts share the repository; each forgets only its own; a snapshot made by hand survives"
(cd /mnt/web && restic -r $REST backup --host web01 --tag handmade . > /dev/null)
write_policy "$(policies web02 /var/lib/lvsnap-web02/catalog.db)"
for _ in 1 2 3; do lvsnap snapshot home > /dev/null; sleep 1; "$LVSNAP" backup home > /dev/null || fail "web02's backup failed"; done
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"
lvsnap snapshot home > /dev/null; sleep 1
lvsnap backup home
count() { restic -r $REST snapshots --json --host "$1" --tag "$2" | grep -o '"short_id"' | wc -l; }
assert_eq "$(count web01 lvsnap-policy=home)" 2 "web01's lvsnap snapshots after pruning"
assert_eq "$(count web02 lvsnap-policy=home)" 2 "web02's lvsnap snapshots"
assert_eq "$(count web01 handmade)" 1 "the snapshot made by hand"
"$LVSNAP" backups --policy home
write_policy "$(policies web02 /var/lib/lvsnap-web02/catalog.db)"
"$LVSNAP" backups --policy home
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"

step "server stopped: the backup fails naming the repository, other snapshots are still taken"
# Backups of home every minute, so that `run` backs it up at the start of the next minute
# (--now may be up to a minute ahead of the clock).
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db | sed '/^\[policy.home.backup\]/,/^$/ s/^schedule = .*/schedule = "* * * * *"/')"
lvsnap snapshot home > /dev/null
kill $SERVER; wait $SERVER 2> /dev/null || true
next=$(date -u -d "@$(( $(date +%s) / 60 * 60 + 60 ))" +%Y-%m-%dT%H:%M:%SZ)
before=$(tagged_lvs | grep -c web-lvsnap || true)
out=$("$LVSNAP" run --now "$next" 2>&1) && fail "run passed with the server down: $out"
echo "$out"
assert_contains "$out" "cannot reach restic repository $REST"
[ "$(tagged_lvs | grep -c web-lvsnap)" -gt "$before" ] || fail "policy web took no snapshot while the server was down"
serve
lvsnap backup home > /dev/null
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"

step "kill -9 mid-backup: the next run cleans up and removes the dead restic's lock"
mail_snaps=$(tagged_lvs | grep -c mail-lvsnap || true)
mkdir -p /usr/local/sbin
printf '#!/bin/bash\nexec /usr/bin/restic --limit-upload 100 "$@"\n' > /usr/local/sbin/restic
chmod 755 /usr/local/sbin/restic
head -c 3M /dev/urandom > /mnt/mail/data/big; sync
"$LVSNAP" backup mail > /tmp/killed.log 2>&1 &
pid=$!
for _ in $(seq 300); do [ -n "$(ls /srv/local/locks 2> /dev/null)" ] && running restic && break; sleep 0.1; done
running restic || fail "restic never started"
sleep 1
kill -9 $pid; wait $pid 2> /dev/null || true
sleep 1
[ -n "$(ls /srv/local/locks)" ] || fail "the killed restic left no lock to clean"
rm /usr/local/sbin/restic
out=$("$LVSNAP" backup mail 2>&1); echo "$out"
assert_contains "$out" "was interrupted"
assert_contains "$out" "removed stale locks from restic repository /srv/local"
assert_eq "$(ls /srv/local/locks)" "" "locks left in the repository"
assert_eq "$(tagged_lvs | grep -c mail-lvsnap || true)" "$mail_snaps" "snapshots of mail after the killed backup and the next"
state=$("$LVSNAP" backups --all --json --policy mail)
assert_contains "$state" '"state":"failed"'
assert_eq "$(grep -c ' /run/lvsnap/backup' /proc/mounts)" 0 "mounts left by the killed backup"
assert_eq "$(ls /run/lvsnap/backup | grep -c excludes || true)" 0 "the killed backup's FIFO directory"

step "entries the walk leaves out reach a running restic through its exclude file"
# restic starts before the snapshot's tree is walked and reads what to leave out from a FIFO
# once it has locked the repository. A path too long to restore is left out (the backup is
# partial); restic trims and expands the lines of an exclude file and splits it at newlines,
# so the names end in "$HOME " and hold a newline.
deep=/mnt/mail/deep; mkdir -p $deep; d=$deep
for _ in $(seq 14); do d="$d/$(printf 'a%.0s' $(seq 250))"; mkdir "$d"; done
echo hidden > "$d/$(printf 'x%.0s' $(seq 74))\$HOME "; echo kept > "$d/short"; sync
backed_up() {  # the latest restic snapshot of mail: entries whose path has $1
  restic -r /srv/local ls latest --tag lvsnap-policy=mail 2> /dev/null | grep -c -- "$1" || true
}
out=$("$LVSNAP" -v backup mail 2>&1) && fail "a backup that left an entry out passed: $out"
assert_contains "$out" "backup partial"
assert_contains "$("$LVSNAP" backups --all --json --policy mail)" '"state":"partial"'
assert_eq "$(backed_up 'xxxx\$HOME')" 0 "the too-long entry in restic's snapshot"
assert_eq "$(backed_up '/short$')" 1 "its sibling in restic's snapshot"
echo hidden > "$d/$(printf 'y%.0s' $(seq 60))
$(printf 'z%.0s' $(seq 9))\$HOME "; sync
out=$("$LVSNAP" -v backup mail 2>&1) && fail "a backup that left entries out passed: $out"
assert_contains "$out" "backup partial"
assert_eq "$(backed_up 'yyyy')" 0 "the too-long entry named with a newline in restic's snapshot"
assert_eq "$(backed_up 'zzzz')" 0 "the too-long entry named with a newline in restic's snapshot"
assert_eq "$(backed_up '/short$')" 1 "its sibling in restic's snapshot"
case $out in *"restic starts again"*) fail "restic was started twice: $out" ;; esac
assert_eq "$(ls /srv/local/locks)" "" "locks left in the repository"
assert_eq "$(ls /run/lvsnap/backup | grep -c excludes || true)" 0 "FIFO directories left behind"
rm -rf $deep

step "a full repository: the backup fails saying so, and is recorded failed"
mkdir -p /srv/small && mount -t tmpfs -o size=3m tmpfs /srv/small
run restic -r /srv/small init > /dev/null
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db | sed 's|repository = "/srv/local"|repository = "/srv/small"|')"
head -c 4M /dev/urandom > /mnt/mail/data/big; sync
out=$("$LVSNAP" backup mail 2>&1) && fail "a backup into a full repository passed: $out"
echo "$out"
assert_contains "$out" "restic repository /srv/small is full ("
assert_contains "$out" "no space left on device); free space there"
assert_contains "$("$LVSNAP" backups --all --json --policy mail)" '"state":"failed"'
assert_eq "$(grep -c ' /run/lvsnap/backup' /proc/mounts)" 0 "mounts left by the failed backup"
umount /srv/small
write_policy "$(policies web01 /var/lib/lvsnap/catalog.db)"
kill $SERVER
