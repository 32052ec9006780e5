#!/bin/sh
# 60 s of a busy 2-core machine (bench/sched_analyze.py): two CPU hogs, a pipe ping-pong in a
# loop, 8 MiB writes with fsync, short helpers (/bin/true, sleep) from this shell
cd "$(dirname "$0")/.." || exit 1
end=$(( $(date +%s) + 60 ))
python3 -c "import time; t=time.time()
while time.time()-t<60: pass" &
python3 -c "import time; t=time.time()
while time.time()-t<60: pass" &
( while [ "$(date +%s)" -lt "$end" ]; do .venv/bin/python -m bench.workload_pingpong --trips 20000 >/dev/null; done ) &
( while [ "$(date +%s)" -lt "$end" ]; do dd if=/dev/zero of=/var/tmp/k3sprof-busy.bin bs=1M count=8 conv=fsync 2>/dev/null; sleep 0.2; done ) &
while [ "$(date +%s)" -lt "$end" ]; do /bin/true; sleep 0.05; done
wait
rm -f /var/tmp/k3sprof-busy.bin
