# lvsnap init and lvsnap doctor, from the installed package, on a guest laid out like a small
# server: two thick ext4 volumes, a thin xfs volume, swap, and a snapshot someone else made.

step "vg0: home and srv (thick ext4), data (thin xfs), swap, a foreign snapshot of home"
run vgcreate -q vg0 /dev/vdb
run lvcreate -q -y -L 64M -n home vg0
run lvcreate -q -y -L 64M -n srv vg0
run lvcreate -q -y -L 32M -n swap vg0
run lvcreate -q -y -L 128M -T vg0/pool
run lvcreate -q -y -V 320M -T vg0/pool -n data
make_fs ext4 /dev/vg0/home
make_fs ext4 /dev/vg0/srv
make_fs xfs /dev/vg0/data
mkswap -q /dev/vg0/swap
swapon /dev/vg0/swap
mkdir -p /mnt/home /mnt/srv /mnt/data
mount /dev/vg0/home /mnt/home
mount /dev/vg0/srv /mnt/srv
mount /dev/vg0/data /mnt/data
run lvcreate -q -y -s -L 16M -n mysnap vg0/home

step "a fresh install: run explains and exits 0, status says there is no policy yet"
out=$(lvsnap run)
echo "$out"
assert_contains "$out" "no policy yet in /etc/lvsnap/lvsnap.toml"
assert_contains "$out" "lvsnap init"
out=$(lvsnap status)
echo "$out"
assert_contains "$out" "no policy yet — \`lvsnap init\`"

step "lvsnap init proposes exactly home, srv and data, with a reason for each volume left out"
out=$(lvsnap init)
echo "$out"
assert_eq "$(echo "$out" | grep -c '^\[policy\.')" 3 "policies proposed"
for p in home srv data; do assert_contains "$out" "[policy.$p]"; done
assert_contains "$out" 'volumes = ["vg0/data"]'
assert_contains "$out" "thin volume: thin snapshots share the pool's blocks"
assert_contains "$out" 'size = "20%ORIGIN"'
assert_contains "$out" 'keep-free = "10%"'
assert_contains "$out" "vg0/swap: swap"
assert_contains "$out" "vg0/mysnap: a snapshot lvsnap did not make"
assert_contains "$out" "vg0/pool: a thin pool"
assert_contains "$out" "not written: \`lvsnap init --write\` saves this as /etc/lvsnap/policy.d/init.toml"
[ ! -e /etc/lvsnap/policy.d ] || fail "init without --write wrote something"
json=$(lvsnap init --json)
assert_contains "$json" '"written":false'
assert_eq "$(echo "$json" | grep -o '"kind":"thick"' | wc -l)" 2 "thick policies in the JSON"

step "--write saves it beside the packaged file, root's alone; config check and run succeed"
lvsnap init --write
assert_eq "$(stat -c %a /etc/lvsnap/policy.d/init.toml)" 600 "mode of the written policy file"
assert_eq "$(stat -c %a /etc/lvsnap/policy.d)" 700 "mode of policy.d"
cmp -s /etc/lvsnap/lvsnap.toml <(dpkg-deb --fsys-tarfile "$LVSNAP_DEB" | tar -xO ./etc/lvsnap/lvsnap.toml) \
  || fail "init changed the packaged policy file"
lvsnap config check
lvsnap run
assert_eq "$(tagged_lvs vg0 | wc -l)" 3 "snapshots after the first run"
assert_lv_exists vg0/mysnap
out=$(lvsnap list)
echo "$out"
for v in home srv data; do assert_contains "$out" "vg0/$v"; done

step "a later --write, for a volume added since, writes beside the first file and never over it"
run lvcreate -q -y -L 32M -n logs vg0
make_fs ext4 /dev/vg0/logs
mkdir -p /mnt/logs && mount /dev/vg0/logs /mnt/logs
first=$(sha256sum < /etc/lvsnap/policy.d/init.toml)
out=$(lvsnap init)
assert_contains "$out" "vg0/home: already in policy home"
assert_contains "$out" "[policy.logs]"
assert_eq "$(echo "$out" | grep -c '^\[policy\.')" 1 "policies proposed the second time"
assert_contains "$out" "saves this as /etc/lvsnap/policy.d/init-2.toml"
lvsnap init --write > /dev/null
assert_eq "$(sha256sum < /etc/lvsnap/policy.d/init.toml)" "$first" "the first file after the second --write"
assert_contains "$(cat /etc/lvsnap/policy.d/init-2.toml)" 'volumes = ["vg0/logs"]'
lvsnap config check > /dev/null

step "doctor on a host that lacks thin_check and backs up into a world-writable directory"
mkdir -p /srv/backup && chmod 777 /srv/backup
run lvcreate -q -y -L 32M -n spool vg0
cat > /etc/lvsnap/policy.d/spool.toml <<'TOML'
[policy.spool]
volumes = ["vg0/spool"]
schedule = "0 3 * * *"
size = "20%ORIGIN"
keep = { daily = 3 }
[policy.spool.backup]
engine = "rsync"
target = "/srv/backup/lvsnap"
schedule = "0 4 * * *"
keep = { daily = 7 }
TOML
mkdir -p /root/hidden && mv /usr/sbin/thin_check /root/hidden/
set +e
out=$("$LVSNAP" doctor)
rc=$?
set -e
echo "$out"
assert_eq "$rc" 2 "doctor's exit status with failures"
assert_contains "$out" "FAIL  thin tools"
assert_contains "$out" "thin_check not found: 1 thin pool(s) exist"
assert_contains "$out" "fix: apt-get install thin-provisioning-tools"
assert_contains "$out" "FAIL  backup target /srv/backup/lvsnap"
assert_contains "$out" "/srv/backup is writable by group or others (mode 777)"
assert_contains "$out" "fix: chown root: /srv/backup && chmod 0700 /srv/backup"
assert_contains "$out" "OK    lvm2"
assert_contains "$out" "OK    device-mapper"
assert_contains "$out" "OK    udev"
assert_contains "$out" "WARN  units"
assert_contains "$out" "fix: systemctl enable --now lvsnap.timer"

step "fixed as told, doctor finds no failure"
mv /root/hidden/thin_check /usr/sbin/
chmod 700 /srv/backup
systemctl enable --now lvsnap.timer
out=$("$LVSNAP" doctor) || fail "doctor still reports a problem after the fixes:
$out"
echo "$out"
assert_not_contains "$out" "FAIL  "
assert_contains "$out" "OK    units"
systemctl disable --now lvsnap.timer
