#!/bin/bash
# replicate-steps.sh LVSNAP — runs in the test VM: where a whole send's time goes, one step at a
# time (send alone, through a pipe, receive from a file, dd direct and buffered), caches dropped
# before each, two rounds. See BENCHMARKS.md, "Replication".
set -euo pipefail
LVSNAP=$1
export LVSNAP_CONFIG=/etc/lvsnap/lvsnap.toml
vgcreate -q -y vg0 /dev/vda > /dev/null
vgcreate -q -y vgb /dev/vdb > /dev/null
lvcreate -q -y -L 1200M -T vg0/pool > /dev/null
lvcreate -q -y -V 1G -T vg0/pool -n vol > /dev/null
lvcreate -q -y -L 3G -T vgb/replicas > /dev/null
dd if=/dev/urandom of=/dev/vg0/vol bs=1M count=512 oflag=direct status=none
mkdir -p /etc/lvsnap
printf '[settings]\ntimezone = "UTC"\n\n[policy.vol]\nvolumes = ["vg0/vol"]\nschedule = "0 0 * * *"\nkeep = { last = 100 }\n' > $LVSNAP_CONFIG
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
$LVSNAP snapshot vol > /dev/null
s=$(lvs --noheadings -o lv_name vg0 | tr -d ' ' | grep '^vol-lvsnap-' | sort | tail -1)
lvchange -q -ay -K vg0/$s
for r in 1 2; do
cold; t=$(date +%s%N); dd if=/dev/vg0/$s of=/dev/null bs=1M status=none; echo "dd read snapshot to null: $(ms $t)"
cold; t=$(date +%s%N); $LVSNAP send vg0/$s 2>/dev/null > /dev/null; echo "send to null: $(ms $t)"
cold; t=$(date +%s%N); $LVSNAP send vg0/$s 2>/dev/null | cat > /dev/null; echo "send through a pipe to cat: $(ms $t)"
cold; t=$(date +%s%N); $LVSNAP send vg0/$s 2>/dev/null > /dev/shm/stream; echo "send to shm: $(ms $t)"
cold; t=$(date +%s%N); $LVSNAP receive --pool vgb/replicas < /dev/shm/stream > /dev/null; echo "receive from shm file: $(ms $t)"
lvremove -q -y vgb -S 'lv_tags=lvsnap-replica' > /dev/null
cold; t=$(date +%s%N); cat /dev/shm/stream | $LVSNAP receive --pool vgb/replicas > /dev/null; echo "receive from pipe: $(ms $t)"
lvremove -q -y vgb -S 'lv_tags=lvsnap-replica' > /dev/null
lvcreate -q -y -V 1G -T vgb/replicas -n dd > /dev/null
cold; t=$(date +%s%N); dd if=/dev/shm/stream of=/dev/vgb/dd bs=1M count=512 oflag=direct status=none; echo "dd shm -> thin direct 512M: $(ms $t)"
lvremove -q -y vgb/dd; lvcreate -q -y -V 1G -T vgb/replicas -n dd > /dev/null
cold; t=$(date +%s%N); dd if=/dev/shm/stream of=/dev/vgb/dd bs=1M count=512 conv=fsync status=none; echo "dd shm -> thin buffered 512M: $(ms $t)"
lvremove -q -y vgb/dd
cold; t=$(date +%s%N); $LVSNAP send vg0/$s 2>/dev/null | $LVSNAP receive --pool vgb/replicas > /dev/null; echo "send | receive: $(ms $t)"
lvremove -q -y vgb -S 'lv_tags=lvsnap-replica' > /dev/null
rm /dev/shm/stream
done
