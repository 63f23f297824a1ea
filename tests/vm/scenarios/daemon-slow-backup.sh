# The daemon never makes snapshots wait for a copy: with one policy backing up slowly (rsync at
# 1 MB/s over 12 MB), the other policy's per-4-second snapshots are still taken on time during
# the copy, and the backup completes.
run lvcreate -q -y -L 64M -n slow vg0
run lvcreate -q -y -L 32M -n fast vg0
make_fs ext4 /dev/vg0/slow; make_fs ext4 /dev/vdb
mkdir -p /mnt/slow /mnt/backup; mount /dev/vg0/slow /mnt/slow; mount /dev/vdb /mnt/backup
head -c 12M /dev/urandom > /mnt/slow/big; sync
mkdir -p /usr/local/sbin
printf '#!/bin/bash\nexec /usr/bin/rsync --bwlimit=1000 "$@"\n' > /usr/local/sbin/rsync
chmod 755 /usr/local/sbin/rsync
write_policy '[settings]
timezone = "UTC"
# The scenario slows rsync down with a wrapper there.
tool-path = ["/usr/local/sbin"]

[policy.slow]
volumes = ["vg0/slow"]
schedule = "0 0 * * * *"
size = "16M"
keep = { last = 3 }
[policy.slow.backup]
schedule = "0 0 * * * *"
engine = "rsync"
target = "/mnt/backup"
keep = { last = 3 }

[policy.fast]
volumes = ["vg0/fast"]
schedule = "*/4 * * * * *"
size = "8M"
keep = { last = 20 }
max-thick-per-origin = 20'
"$LVSNAP" daemon > daemon.log 2>&1 &
pid=$!
# The catch-up run at start takes slow's first snapshot and starts its backup.
for _ in $(seq 200); do
  [ -n "$(ls -A /mnt/backup/vg0/slow/.*.partial 2> /dev/null)" ] && break
  sleep 0.2
done
copy_start=$(date +%s)
for _ in $(seq 300); do
  [ -n "$(ls /mnt/backup/vg0/slow/*.manifest 2> /dev/null)" ] && break
  sleep 0.5
done
copy_end=$(date +%s)
run kill -TERM $pid
wait $pid || true
cat daemon.log
echo "copy from $copy_start to $copy_end ($((copy_end - copy_start)) s)"
[ $((copy_end - copy_start)) -ge 8 ] || fail "the copy was too short to tell anything"
assert_contains "$(cat daemon.log)" "backup slow vg0/slow: wrote"
during=$(lvs --noheadings -o lv_tags vg0 | grep -o 'lvsnap-time=[0-9]*' | cut -d= -f2 \
  | awk -v a=$copy_start -v b=$copy_end '$1 > a && $1 < b' | wc -l)
lvs --noheadings -o lv_name,lv_tags vg0
echo "fast snapshots during the copy: $during"
[ "$during" -ge $(( (copy_end - copy_start) / 4 - 1 )) ] || fail "fast's snapshots waited for slow's copy"
