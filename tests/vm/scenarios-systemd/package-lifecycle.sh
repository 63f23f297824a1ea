# The Debian package under dpkg and a running systemd: install, upgrade over itself, remove,
# purge and install again, with its maintainer scripts. What lvsnap made — the catalog, the
# snapshots, policy files the administrator added — outlives removal and purge.

step "installed (by the runner, with dpkg -i): files, modes, units known but not enabled"
dpkg -s lvsnap | grep -q '^Status: install ok installed' || fail "lvsnap is not installed"
assert_eq "$(stat -c '%a %U' /usr/sbin/lvsnap)" "755 root"
assert_eq "$(stat -c '%a %U' /var/lib/lvsnap)" "700 root" "the state directory"
assert_eq "$(stat -c %a /etc/lvsnap/lvsnap.toml)" 644
assert_eq "$(dpkg-query -W -f='${Conffiles}' lvsnap | awk '{print $1}')" /etc/lvsnap/lvsnap.toml "conffiles"
for u in lvsnap.timer lvsnap.service lvsnap-daemon.service; do
  systemctl cat "$u" > /dev/null || fail "systemd does not know $u"
done
assert_eq "$(systemctl is-enabled lvsnap.timer || true)" disabled "the timer after install"
assert_eq "$(systemctl is-active lvsnap.timer || true)" inactive
man -w lvsnap > /dev/null 2>&1 || [ -f /usr/share/man/man8/lvsnap.8.gz ] || fail "no man page"
[ -f /usr/share/bash-completion/completions/lvsnap ] || fail "no bash completion"
out=$(lvsnap run)
assert_contains "$out" "no policy yet"

step "a policy, a snapshot, the timer enabled, the packaged file edited"
run vgcreate -q vg0 /dev/vdb
run lvcreate -q -y -L 64M -n home vg0
make_fs ext4 /dev/vg0/home
mkdir -p /mnt/home && mount /dev/vg0/home /mnt/home
lvsnap init --write
lvsnap run
snap=$(tagged_lvs vg0)
[ -n "$snap" ] || fail "no snapshot taken"
systemctl enable --now lvsnap.timer
echo "# edited by the administrator" >> /etc/lvsnap/lvsnap.toml

step "upgrade to the next Debian revision: the edit, the timer, the catalog and the snapshot stay"
out=$(DEBIAN_FRONTEND=noninteractive dpkg -i "$LVSNAP_DEB_UPGRADE" 2>&1)
echo "$out"
assert_eq "$(dpkg-query -W -f='${Version}' lvsnap)" "$(dpkg-deb -f "$LVSNAP_DEB_UPGRADE" Version)"
assert_not_contains "$out" "Configuration file" "dpkg asked about the conffile"
assert_contains "$(cat /etc/lvsnap/lvsnap.toml)" "# edited by the administrator"
assert_eq "$(systemctl is-enabled lvsnap.timer)" enabled "the timer after the upgrade"
assert_eq "$(systemctl is-active lvsnap.timer)" active
assert_eq "$(tagged_lvs vg0)" "$snap"
out=$(lvsnap list)
assert_contains "$out" "$snap"

step "remove: the binary goes, the timer is stopped; catalog, policy files and snapshot stay"
out=$(DEBIAN_FRONTEND=noninteractive dpkg --remove lvsnap 2>&1)
echo "$out"
[ ! -e /usr/sbin/lvsnap ] || fail "/usr/sbin/lvsnap outlived removal"
assert_eq "$(systemctl is-active lvsnap.timer || true)" inactive "the timer after removal"
[ -f /var/lib/lvsnap/catalog.db ] || fail "removal lost the catalog"
[ -f /etc/lvsnap/lvsnap.toml ] || fail "removal (not purge) lost the conffile"
[ -f /etc/lvsnap/policy.d/init.toml ] || fail "removal lost the administrator's policy file"
assert_eq "$(tagged_lvs vg0)" "$snap"

step "purge: configuration gone, the message says what stays, and it stays"
out=$(DEBIAN_FRONTEND=noninteractive dpkg --purge lvsnap 2>&1)
echo "$out"
assert_contains "$out" "lvsnap purged"
assert_contains "$out" "/var/lib/lvsnap"
assert_contains "$out" "LVM snapshots tagged lvsnap"
[ ! -e /etc/lvsnap/lvsnap.toml ] || fail "purge kept the conffile"
[ -f /etc/lvsnap/policy.d/init.toml ] || fail "purge removed a file the package did not ship"
[ -f /var/lib/lvsnap/catalog.db ] || fail "purge lost the catalog"
assert_eq "$(tagged_lvs vg0)" "$snap"
dpkg -s lvsnap > /dev/null 2>&1 && fail "lvsnap still known to dpkg after purge"
[ ! -e /etc/systemd/system/timers.target.wants/lvsnap.timer ] || fail "purge left the timer's enable link"

step "installed again: the old catalog is found, the snapshot still lvsnap's"
DEBIAN_FRONTEND=noninteractive dpkg -i "$LVSNAP_DEB" > /dev/null
assert_eq "$(systemctl is-enabled lvsnap.timer || true)" disabled "the timer after purge and reinstall"
out=$(lvsnap list)
echo "$out"
assert_contains "$out" "$snap"
lvsnap run --dry-run
