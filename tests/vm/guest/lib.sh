# lib.sh — helpers for real-LVM scenarios, sourced at the top of each scenario (bash, in the VM).
#
# The runner gives every scenario a fresh volume group vg0 on /dev/vda (4 GiB) and a blank
# /dev/vdb; $LVSNAP is the lvsnap binary under test. A scenario fails on the first command that
# fails or the first assertion that does not hold; its output is the log shown on failure.
set -euo pipefail

LVSNAP=${LVSNAP:?the runner sets LVSNAP}
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml

# The seconds since the scenario began, so a log shows which step is slow.
step() { echo "--- [${SECONDS}s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs a command, echoing it first, so the log reads like a session.
run() { echo "+ $*"; "$@"; }

# lvsnap with its arguments, echoed.
lvsnap() { echo "+ lvsnap $*"; "$LVSNAP" "$@"; }

assert_eq() { [ "$1" = "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"; }

assert_contains() {
  case "$1" in *"$2"*) ;; *) fail "${3:-text} lacks '$2':
$1" ;; esac
}

assert_not_contains() {
  case "$1" in *"$2"*) fail "${3:-text} contains '$2':
$1" ;; *) ;; esac
}

# expect_status CODE COMMAND...: the command must exit with CODE.
expect_status() {
  local want=$1; shift
  local got=0
  "$@" || got=$?
  [ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

lv_exists() { lvs "$1" > /dev/null 2>&1; }
assert_lv_exists() { lv_exists "$1" || fail "logical volume $1 does not exist"; }
# The replica vgb/NAME equals its source snapshot vg0/NAME, byte for byte.
assert_replica_equal() {
  lvchange -q -ay -K "vg0/$1" "vgb/$1" > /dev/null
  cmp "/dev/vg0/$1" "/dev/vgb/$1" || fail "the replica vgb/$1 differs from its source vg0/$1"
  echo "vgb/$1 equals vg0/$1"
}
assert_no_lv() { ! lv_exists "$1" || fail "logical volume $1 exists"; }

# lv_field VG/LV FIELD: one lvs field, trimmed.
lv_field() { lvs --noheadings --nosuffix --units b -o "$2" "$1" | tr -d ' '; }

# make_fs TYPE DEVICE: a filesystem, quietly.
make_fs() {
  case "$1" in
    ext4) mkfs.ext4 -q -F "$2" ;;
    xfs) mkfs.xfs -q -f "$2" ;;
    *) fail "make_fs: unknown filesystem $1" ;;
  esac
}

# Read-only mount options for a snapshot, as DESIGN.md names them: no journal replay, and for
# xfs no UUID check (the snapshot shares its origin's UUID).
snapshot_mount_opts() {
  case "$1" in
    ext4) echo ro,noload ;;
    xfs) echo ro,nouuid,norecovery ;;
  esac
}

# write_policy TEXT: the policy file lvsnap reads by default in the guest.
write_policy() { mkdir -p /etc/lvsnap; printf '%s\n' "$1" > "$LVSNAP_CONFIG"; }

# utc_at HOURS_FROM_START: an RFC 3339 instant, hours after 2026-03-02T00:00:00Z (a Monday).
utc_at() { date -u -d "@$(( 1772409600 + $1 * 3600 ))" +%Y-%m-%dT%H:%M:%SZ; }

# Names of the LVs in VG (default vg0) that carry lvsnap's tag, sorted.
tagged_lvs() { lvs --noheadings -o lv_name,lv_tags "${1:-vg0}" | awk '$2 ~ /(^|,)lvsnap(,|$)/ {print $1}' | sort; }

# slow_lvcreate SECONDS: every lvcreate lvsnap runs from now on sleeps after creating the LV,
# holding lvsnap between lvcreate and its catalog write (the runner removes the wrapper).
slow_lvcreate() {
  mkdir -p /usr/local/sbin
  printf '#!/bin/bash\n/usr/sbin/lvcreate "$@"; rc=$?\nsleep %s\nexit $rc\n' "$1" > /usr/local/sbin/lvcreate
  chmod +x /usr/local/sbin/lvcreate
}

# running NAME: whether a process with that command name is alive (the guest has no procps).
running() { grep -qlx "$1" /proc/[0-9]*/comm 2> /dev/null; }

# populate_tree DIR: the kinds of files a server holds — owners, modes, times, an ACL, xattrs,
# a hard link, a symlink, a sparse file, a fifo, many small files, and a tmp/ to exclude.
populate_tree() {
  local d=$1
  mkdir -p "$d/etc" "$d/data" "$d/many" "$d/tmp/cache"
  echo "root:x:0:0:root:/root:/bin/bash" > "$d/etc/passwd"
  printf 'secret\n' > "$d/etc/shadow"; chmod 640 "$d/etc/shadow"; chown 0:42 "$d/etc/shadow"
  setfacl -m u:1234:rw "$d/etc/shadow"
  touch -d '2020-02-29 12:34:56' "$d/etc/passwd"
  head -c 3M /dev/urandom > "$d/data/blob"
  ln "$d/data/blob" "$d/data/blob-hardlink"
  setfattr -n user.origin -v lvsnap "$d/data/blob"
  ln -s ../etc/passwd "$d/data/passwd-link"
  truncate -s 32M "$d/data/sparse"; echo end >> "$d/data/sparse"
  mkfifo "$d/data/fifo"
  chown 1234:5678 "$d/data"; chmod 2750 "$d/data"
  for i in $(seq 150); do echo "file $i" > "$d/many/f$i"; done
  echo junk > "$d/tmp/cache/junk"
}

# tree_sums DIR [SKIP]: sha256sum of every file below DIR (leaving out the top-level SKIP),
# relative paths, sorted.
tree_sums() {
  local skip=()
  [ -n "${2:-}" ] && skip=(-path "./$2" -prune -o)
  (cd "$1" && find . "${skip[@]}" -type f -print0 | sort -z | xargs -0 sha256sum)
}
