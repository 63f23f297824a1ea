#!/bin/bash
# newer-kernel.sh — prints (as NAME=VALUE lines) the environment under which provision.sh builds
# the guest with Debian's backports kernel instead of the release's own: scenarios in
# tests/vm/scenarios-newer-kernel/ need Linux 6.6 or later (a snapshot set's `freeze = true`:
# before 6.6 LVM cannot snapshot a filesystem frozen with fsfreeze). The backports lists live
# under target/lvm-vm/apt-backports; the host's own apt configuration is not touched.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${LVSNAP_VM_CACHE:-$ROOT/target/lvm-vm}/apt-backports
mkdir -p "$D/lists/partial" "$D/cache/archives/partial"
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
cat > "$D/sources.list" <<LIST
deb http://deb.debian.org/debian $suite main
deb http://deb.debian.org/debian $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
deb http://deb.debian.org/debian $suite-backports main
LIST
cat > "$D/apt.conf" <<CONF
Dir::Etc::sourcelist "$D/sources.list";
Dir::Etc::sourceparts "/nonexistent";
Dir::State::Lists "$D/lists";
Dir::Cache "$D/cache";
CONF
export APT_CONFIG=$D/apt.conf
# Lists refreshed once a day.
if [ -z "$(find "$D/lists" -name "*$suite-backports*Packages*" -mmin -1440 2> /dev/null)" ]; then
  apt-get update -qq >&2 || { echo "newer-kernel: apt-get update of $suite-backports failed" >&2; exit 1; }
fi
pkg=$(apt-cache -o APT::Default-Release="$suite-backports" depends linux-image-amd64 2> /dev/null \
      | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "newer-kernel: no backports kernel found for $suite" >&2; exit 1; }
echo "APT_CONFIG=$APT_CONFIG"
echo "LVSNAP_VM_KERNEL=$pkg"
