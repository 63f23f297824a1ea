#!/bin/bash
# tests/package.sh DEB — the Debian package as built, checked on the host: its file list and
# modes are what the README says (dpkg-deb -c), its control data and conffile (dpkg-deb -I),
# and lintian reports no error. The warnings accepted are listed below with why; any other
# warning fails too. (Installing, upgrading, removing and purging it is tested under systemd in
# the VM: tests/vm/scenarios-systemd/package-lifecycle.sh.)
set -euo pipefail
DEB=${1:?usage: tests/package.sh DEB}
# Accepted lintian warnings:
#   initial-upload-closes-no-bugs — the package is not uploaded to Debian; there is no ITP bug.
ACCEPTED="initial-upload-closes-no-bugs"

fail() { echo "tests/package.sh: FAIL: $*" >&2; exit 1; }

# Every path with its mode and owner, directories left out (dpkg-deb -c: mode owner size date time path).
files=$(dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ {print $1, $2, $6}' | sort -k3)
expected=$(sort -k3 <<'LIST'
-rwxr-xr-x 0/0 ./usr/sbin/lvsnap
-rw-r--r-- 0/0 ./etc/lvsnap/lvsnap.toml
-rw-r--r-- 0/0 ./usr/lib/systemd/system/lvsnap.service
-rw-r--r-- 0/0 ./usr/lib/systemd/system/lvsnap.timer
-rw-r--r-- 0/0 ./usr/lib/systemd/system/lvsnap-daemon.service
-rw-r--r-- 0/0 ./usr/lib/modules-load.d/lvsnap.conf
-rw-r--r-- 0/0 ./usr/share/man/man8/lvsnap.8.gz
-rw-r--r-- 0/0 ./usr/share/bash-completion/completions/lvsnap
-rw-r--r-- 0/0 ./usr/share/zsh/vendor-completions/_lvsnap
-rw-r--r-- 0/0 ./usr/share/fish/vendor_completions.d/lvsnap.fish
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/README.md
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/changelog.Debian.gz
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/copyright
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/examples/database-hooks.toml
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/examples/lvsnap.toml
-rw-r--r-- 0/0 ./usr/share/doc/lvsnap/examples/thin-frequent.toml
LIST
)
[ "$files" = "$expected" ] || fail "the package's files differ from the list (< package, > expected):
$(diff <(echo "$files") <(echo "$expected") || true)"

field() { dpkg-deb -f "$DEB" "$1"; }
[ "$(field Package)" = lvsnap ] || fail "Package: $(field Package)"
[ "$(field Section)" = admin ] || fail "Section: $(field Section)"
case "$(field Depends)" in *lvm2*) ;; *) fail "Depends lacks lvm2: $(field Depends)" ;; esac
for r in rsync zstd restic thin-provisioning-tools; do
  case ", $(field Recommends)," in *", $r,"*) ;; *) fail "Recommends lacks $r: $(field Recommends)" ;; esac
done
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
dpkg-deb -e "$DEB" "$ctl"
[ "$(cat "$ctl/conffiles")" = /etc/lvsnap/lvsnap.toml ] || fail "conffiles: $(cat "$ctl/conffiles")"
for s in postinst prerm postrm; do
  [ -x "$ctl/$s" ] || fail "no $s maintainer script"
  sh -n "$ctl/$s" || fail "$s is not valid sh"
done
grep -q 'install -d -m 0700 -o root -g root /var/lib/lvsnap' "$ctl/postinst" || fail "postinst does not make /var/lib/lvsnap 0700"
# That the timer is not enabled or started on install, and what upgrade, removal and purge do,
# is tested where it can be seen: under systemd, tests/vm/scenarios-systemd/package-lifecycle.sh.

# The shipped policy file defines no policy, and the binary in the package says so.
x=$(mktemp -d)
dpkg-deb -x "$DEB" "$x"
"$x/usr/sbin/lvsnap" config check "$x/etc/lvsnap/lvsnap.toml" | grep -q '(0 policies)' \
  || fail "the shipped /etc/lvsnap/lvsnap.toml is not a valid file without policies"
zgrep -q '^\.TH lvsnap 8' "$x/usr/share/man/man8/lvsnap.8.gz" || fail "the man page is not in section 8"
rm -rf "$x"

if ! command -v lintian > /dev/null; then
  [ "$(id -u)" = 0 ] || fail "lintian is missing: apt-get install lintian"
  apt-get install -y -qq --no-install-recommends lintian > /dev/null
fi
# lintian exits 0, or 1 when it reports errors (checked below by tag); anything else is its
# own failure, not a clean package.
rc=0
report=$(lintian --tag-display-limit 0 "$DEB" 2>&1) || rc=$?
[ "$rc" -le 1 ] || fail "lintian itself failed (exit $rc): $report"
tags=$(echo "$report" | grep -E '^[EWI]: ' || true)
echo "$tags" | sed '/^$/d; s/^/lintian: /'
if echo "$tags" | grep -q '^E: '; then fail "lintian reports errors"; fi
other=$(echo "$tags" | grep '^W: ' | grep -vE "($(echo $ACCEPTED | tr ' ' '|'))" || true)
[ -z "$other" ] || fail "lintian warnings not accepted in tests/package.sh:
$other"
echo "tests/package.sh: $DEB ok: $(echo "$files" | wc -l) files, lintian clean but for: $ACCEPTED"
