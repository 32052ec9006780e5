"""What the syscall-tracepoint slow path alone costs a syscall-heavy workload (issue 24).

    sudo .venv/bin/python -m bench.syscall_slowpath [--rounds 7] [--trips 200000]

Once ANY `syscalls:` tracepoint is enabled, the kernel sets TIF_SYSCALL_TRACEPOINT on every
task, and every syscall of every process then takes the slow entry/exit path, whether or not
its own tracepoint is enabled. This enables one syscall tracepoint through tracefs (ftrace,
no BPF: `syscalls/sys_enter_<SYSCALL>/enable`, by default sync_file_range, which the
workload never calls, so nothing is traced) and runs the pinned pipe ping-pong
(bench/workload_pingpong.py: two read/write syscalls per switch) with and without it,
interleaved; the ratio is the slow path's cost and nothing else. The event is disabled
again on exit, even on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import BENCH, load_avg, log, run_json, summary

TRACEFS = Path("/sys/kernel/tracing")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--trips", type=int, default=200_000)
    ap.add_argument("--syscall", default="sync_file_range")
    ap.add_argument("--pin", type=int, default=0)
    a = ap.parse_args(argv)
    enable = TRACEFS / "events" / "syscalls" / f"sys_enter_{a.syscall}" / "enable"
    if enable.read_text().strip() != "0":
        print(f"{enable} is already enabled (someone else is tracing): not measuring",
              file=sys.stderr)
        return 1
    cmd = [sys.executable, "-m", "bench.workload_pingpong", "--trips", str(a.trips),
           "--cpu", str(a.pin)]
    ratios, cpu = [], []
    try:
        for r in range(a.rounds):
            base = run_json(cmd, cwd=BENCH.parent)
            enable.write_text("1")
            try:
                slow = run_json(cmd, cwd=BENCH.parent)
            finally:
                enable.write_text("0")
            ratios.append(slow["wall_s"] / base["wall_s"])
            cpu.append(slow["cpu_s"] / base["cpu_s"])
            log(f"round {r}: off {base['wall_s']:.3f}s on {slow['wall_s']:.3f}s ratio "
                f"{ratios[-1]:.3f} cpu ratio {cpu[-1]:.3f} load {load_avg()}")
    finally:
        enable.write_text("0")
    res = {"ratio": summary(ratios), "cpu_ratio": summary(cpu), "syscall": a.syscall,
           "trips": a.trips}
    print(json.dumps(res))
    s = res["ratio"]
    print(f"syscall slow path (sys_enter_{a.syscall} enabled, never hit): ping-pong wall "
          f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f}, n={s['n']}), CPU "
          f"{res['cpu_ratio']['median']:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
