# The packaged units under systemd, every hardening option on: the timer fires and
# lvsnap.service takes and prunes snapshots; Persistent=true catches up once after the clock
# jumps past missed elapses; the daemon starts, reloads and stops; a backup into /srv/backup
# works under the unit. Each checked from systemctl, journalctl and lvsnap itself.

# The timer's random delay (RandomizedDelaySec=60) would only make the waits longer here.
mkdir -p /etc/systemd/system/lvsnap.timer.d
printf '[Timer]\nRandomizedDelaySec=0\n' > /etc/systemd/system/lvsnap.timer.d/no-delay.conf
systemctl daemon-reload

# wait_for SECONDS COMMAND...: until the command succeeds; else what systemd and lvsnap say.
wait_for() {
  local limit=$1; shift
  for _ in $(seq "$limit"); do "$@" && return 0; sleep 1; done
  systemctl list-timers --all --no-pager lvsnap.timer || true
  systemctl status --no-pager lvsnap.timer lvsnap.service lvsnap-daemon.service || true
  journalctl --no-pager -n 40 -u lvsnap.timer -u lvsnap.service -u lvsnap-daemon.service || true
  fail "waited ${limit}s for: $*"
}
# The number of lvsnap.service runs that finished, from the journal.
runs_done() { journalctl -q -u lvsnap.service -o cat | grep -cE 'Deactivated successfully|Failed with result' || true; }
# Whether more than N runs finished (for wait_for, which runs it again each second).
runs_more_than() { [ "$(runs_done)" -gt "$1" ]; }

step "vg0/home (thick ext4) with an every-quarter-hour policy that keeps two"
run vgcreate -q vg0 /dev/vdb
run lvcreate -q -y -L 64M -n home vg0
make_fs ext4 /dev/vg0/home
mkdir -p /mnt/home && mount /dev/vg0/home /mnt/home
echo data > /mnt/home/file
mkdir -p /srv/backup /etc/lvsnap/policy.d && chmod 700 /srv/backup
cat > /etc/lvsnap/policy.d/home.toml <<'TOML'
[policy.home]
volumes = ["vg0/home"]
schedule = "*/15 * * * *"
size = "20%ORIGIN"
keep = { last = 2 }

[policy.home.backup]
engine = "rsync"
target = "/srv/backup/lvsnap"
schedule = "0 * * * *"
keep = { last = 2 }
TOML
lvsnap config check > /dev/null
# The REST server of an off-host restic repository, on the guest's loopback (a real server:
# rclone serve restic), for a backup that leaves the machine.
mkdir -p /srv/rest
systemd-run --unit rest-server --quiet -E HOME=/root rclone serve restic --addr 127.0.0.1:8000 /srv/rest
wait_for 30 bash -c 'exec 3<> /dev/tcp/127.0.0.1/8000' 2> /dev/null
printf 'correct horse battery staple\n' > /etc/lvsnap/restic.pass
chmod 600 /etc/lvsnap/restic.pass
RESTIC_PASSWORD_FILE=/etc/lvsnap/restic.pass RESTIC_CACHE_DIR=/root/restic-cache restic -q -r rest:http://127.0.0.1:8000/ init
run lvcreate -q -y -L 32M -n mail vg0
make_fs ext4 /dev/vg0/mail
mkdir -p /mnt/mail && mount /dev/vg0/mail /mnt/mail
echo letter > /mnt/mail/inbox
cat > /etc/lvsnap/policy.d/mail.toml <<'TOML'
[policy.mail]
volumes = ["vg0/mail"]
schedule = "0 3 * * *"
size = "20%ORIGIN"
keep = { last = 1 }

[policy.mail.backup]
engine = "restic"
repository = "rest:http://127.0.0.1:8000/"
password-file = "/etc/lvsnap/restic.pass"
schedule = "0 * * * *"
keep = { last = 2 }
TOML

step "the timer fires at the quarter hour: lvsnap.service snapshots and backs up under the unit"
# The unit as systemd runs it: every hardening option of the package's file in force.
systemctl show -p ProtectSystem -p ProtectHome -p PrivateTmp -p NoNewPrivileges -p CapabilityBoundingSet \
  -p ProtectClock -p ProtectKernelModules -p RestrictAddressFamilies -p MemoryDenyWriteExecute \
  -p DevicePolicy -p DeviceAllow -p ReadWritePaths -p StateDirectoryMode lvsnap.service
assert_eq "$(systemctl show -p ProtectSystem --value lvsnap.service)" strict
before=$(runs_done)
systemctl enable --now lvsnap.timer
# Just before the next quarter hour.
now=$(date +%s)
date -s "@$(( (now / 900 + 1) * 900 - 3 ))" > /dev/null
wait_for 120 runs_more_than "$before"
systemctl status --no-pager lvsnap.service || true
assert_eq "$(systemctl show -p Result --value lvsnap.service)" success "lvsnap.service's result"
journalctl -q -u lvsnap.service -o cat | tail -20
assert_eq "$(tagged_lvs vg0 | wc -l)" 2 "snapshots after the timer's first run (home and mail)"
out=$(lvsnap backups)
echo "$out"
assert_contains "$out" "complete"
[ -f "$(ls -d /srv/backup/lvsnap/vg0/home/*/ | head -1)file" ] || fail "the backup lacks /file"
assert_contains "$out" "restic"
[ "$(echo "$out" | grep -c complete)" = 2 ] || fail "the rsync and the restic backup are not both complete"
RESTIC_PASSWORD_FILE=/etc/lvsnap/restic.pass RESTIC_CACHE_DIR=/root/restic-cache \
  restic -r rest:http://127.0.0.1:8000/ dump latest /inbox | grep -qx letter || fail "the restic backup lacks /inbox"
assert_eq "$(stat -c %a /var/lib/lvsnap)" 700 "the state directory after a run under the unit"
journalctl -q -u lvsnap.service -o cat | grep "mode is different" && fail "systemd logs a mode difference of the unit's directories"
true

step "two more quarter hours: a snapshot each, the oldest pruned (keep last 2)"
for _ in 1 2; do
  before=$(runs_done)
  now=$(date +%s)
  date -s "@$(( (now / 900 + 1) * 900 - 3 ))" > /dev/null
  wait_for 120 runs_more_than "$before"
done
assert_eq "$(systemctl show -p Result --value lvsnap.service)" success
assert_eq "$(tagged_lvs vg0 | grep -c '^home-')" 2 "snapshots of home kept by last = 2"
journalctl -q -u lvsnap.service -o cat | grep -i "remov" || fail "the journal does not show a removal"

step "Persistent=true: timer stopped, clock two hours on, timer started: one catch-up run"
systemctl stop lvsnap.timer
before=$(runs_done)
newest=$(tagged_lvs vg0 | grep '^home-' | tail -1)
date -s "@$(( $(date +%s) + 7200 ))" > /dev/null
systemctl start lvsnap.timer
wait_for 120 runs_more_than "$before"
sleep 5
assert_eq "$(runs_done)" "$((before + 1))" "runs after the catch-up (one, not a burst)"
assert_eq "$(tagged_lvs vg0 | grep -c '^home-')" 2
[ "$(tagged_lvs vg0 | grep '^home-' | tail -1)" != "$newest" ] || fail "the catch-up took no snapshot"
systemctl list-timers --no-pager lvsnap.timer
systemctl disable --now lvsnap.timer

step "lvsnap-daemon.service starts, reloads on systemctl reload and stops cleanly"
systemctl start lvsnap-daemon.service
# Active as soon as it runs (Type=exec); its signal handlers are set when it says it started.
wait_for 60 sh -c "journalctl -q -u lvsnap-daemon.service -o cat | grep -q 'daemon started'"
cat >> /etc/lvsnap/policy.d/home.toml <<'TOML'

[policy.home-extra]
volumes = ["vg0/extra"]
schedule = "0 3 * * *"
size = "20%ORIGIN"
keep = { daily = 2 }
TOML
run lvcreate -q -y -L 32M -n extra vg0
systemctl reload lvsnap-daemon.service
wait_for 60 sh -c "journalctl -q -u lvsnap-daemon.service -o cat | grep -q 'policy files reloaded.*home-extra'"
assert_eq "$(systemctl is-active lvsnap-daemon.service)" active "the daemon after reload"
systemctl stop lvsnap-daemon.service
assert_eq "$(systemctl show -p Result --value lvsnap-daemon.service)" success "the daemon's stop"
assert_eq "$(systemctl show -p ExecMainStatus --value lvsnap-daemon.service)" 0
journalctl -q -u lvsnap-daemon.service -o cat | tail -15
systemctl status --no-pager lvsnap-daemon.service || true
