"""The collector's scheduling and CPU over one burst round: how often it wakes, how long it
runs and waits for a CPU, and (optionally) where py-spy sees its time.

    sudo .venv/bin/python -m bench.collector_profile --parallel 2            # all cores busy
    sudo .venv/bin/python -m bench.collector_profile --parallel 2 --py-spy .venv/bin/py-spy

py-spy is a measuring tool, not a dependency: install it into your own venv
(`pip install py-spy`). Starts a default recorder, waits until its one-off setup is done,
then reads /proc/PID/{stat,status,schedstat} (summed over the recorder's threads) before and
after the bursts, in the same window bench.overhead uses for the collector's CPU (it ends
1.5 s after the bursts, when their events are decoded and written). Checks that the trace
holds every burst's events and prints one JSON object; with --py-spy also the raw py-spy
samples (`-f raw`) to --spy-out, aggregated by function in the JSON (top entries).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import Recorder, load_avg, log, overhead

SETTLE_S = 1.5


def sched_counters(pid: int) -> dict[str, float]:
    """CPU seconds, context switches and schedstat run/wait ns of every thread of pid."""
    out: Counter[str] = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        for line in Path(f"{base}/status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                key, val = line.split(":")
                out[key] += int(val)
        fields = Path(f"{base}/stat").read_text().rsplit(")", 1)[1].split()
        out["cpu_s"] += (int(fields[11]) + int(fields[12])) / tick
        run_ns, wait_ns, slices = map(int, Path(f"{base}/schedstat").read_text().split())
        out["run_ns"] += run_ns
        out["wait_ns"] += wait_ns
        out["timeslices"] += slices
    return dict(out)


def top_functions(raw: Path, n: int = 15) -> list[tuple[str, float]]:
    """py-spy raw output -> the functions with the most samples on top of the stack (%)."""
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        own[stack.split(";")[-1]] += int(count)
        total += int(count)
    return [(f, round(100 * c / max(total, 1), 1)) for f, c in own.most_common(n)]


def measure(parallel: int, scale: float, py_spy: str | None, spy_out: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from tracer import schema

    overhead.PARALLEL = parallel
    tmp = Path(tempfile.mkdtemp(prefix="k3sprof-collector-"))
    rec = Recorder.start(tmp / "t.trace")
    pid = rec.proc.pid
    spy = None
    try:
        time.sleep(SETTLE_S)
        if py_spy:
            spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "-r", "500",
                                    "--nonblocking", "-f", "raw", "-o", str(spy_out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)
        before, t0 = sched_counters(pid), time.monotonic()
        res = overhead.run_burst(scale)
        time.sleep(SETTLE_S)
        after, window = sched_counters(pid), time.monotonic() - t0
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait()
        rec.stop()
    trace = schema.load(tmp / "t.trace")
    sock = trace.table("socket")
    mine = sock.filter(pc.is_in(sock["pid"], pa.array(res["pids"], pa.int32())))
    want = res["expected_syscalls"]
    seen = {k: int(pc.sum(pc.equal(mine["kind"], k)).as_py() or 0)
            for k in ("connect", "accept", "bind", "listen")}
    out: dict[str, Any] = {k: round(after[k] - before.get(k, 0), 4) for k in after}
    out.update(window_s=round(window, 3), bursts=parallel, burst_elapsed_s=res["elapsed_s"],
               burst_cpu_s=res["cpu_s"], lost=trace.lost_events, seen=seen,
               complete=all(seen[k] >= want.get(k, 0) for k in seen), load=load_avg())
    if spy is not None and spy_out.exists():
        out["py_spy_top"] = top_functions(spy_out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parallel", type=int, default=2, help="bursts at once (2 = all cores)")
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--py-spy", default=None, help="path of a py-spy binary to sample with")
    ap.add_argument("--spy-out", type=Path, default=Path("/tmp/k3sprof-collector.spy.raw"))
    args = ap.parse_args(argv)
    log(f"collector profile: {args.parallel} burst(s) at scale {args.scale}")
    print(json.dumps(measure(args.parallel, args.scale, args.py_spy, args.spy_out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
