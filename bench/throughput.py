"""Lossless throughput of the recorder: ramp an event generator until events are lost.

    sudo .venv/bin/python -m bench.throughput [--seconds 3] [--rates 20000,50000,...]

The generator is a small C program compiled here with gcc: each process calls connect() on
one AF_UNIX socket to a path that does not exist, paced to a target rate (1 ms ticks). A
failed connect leaves the socket unconnected, so every event is exactly one syscall and one
recorder event (a `connect` row with outcome enoent): the cheapest event the recorder
handles, so this measures the collector, not the workload.

One recorder (default options: the default ring buffer) runs for the whole ramp; each step:
lost-event counter and recorder CPU (/proc/PID/stat utime+stime) before and after, with a
settle period so the collector has drained and written the step's events (its CPU for them
is then counted). At the end the trace is loaded and the rows of each step's generator pids
are counted against what the generators say they did (ground truth).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Recorder, cpu_seconds, foreign_tracers, load_avg, log

GENERATOR_C = r"""
/* connect() to a missing unix path at RATE per second for SECONDS; print what was done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: gen RATE SECONDS PATH\n"); return 2; }
    double rate = atof(argv[1]), secs = atof(argv[2]);  /* rate <= 0: as fast as possible */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, argv[3], sizeof(sa.sun_path) - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    long n = 0, failed = 0;
    double t0 = now(), t = t0, end = t0 + secs;
    while (t < end) {
        long target = rate > 0 ? (long)((t - t0) * rate) + 1 : n + 1000;
        while (n < target) {
            if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) failed++;
            n++;
        }
        t = now();
        if (rate > 0 && n > (long)((t - t0) * rate)) {
            struct timespec d = {0, 200000};  /* ahead of schedule: sleep 0.2 ms */
            nanosleep(&d, NULL);
            t = now();
        }
    }
    printf("{\"pid\": %d, \"connects\": %ld, \"failed\": %ld, \"seconds\": %.6f}\n",
           getpid(), n, failed, now() - t0);
    return 0;
}
"""

DEFAULT_RATES = (20_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 600_000, 0)


def build_generator(tmp: Path) -> Path:
    src = tmp / "gen.c"
    exe = tmp / "gen"
    src.write_text(GENERATOR_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


def run_generators(exe: Path, rate: int, seconds: float, procs: int,
                   path: str) -> list[dict[str, Any]]:
    per = rate / procs if rate > 0 else 0
    ps = [subprocess.Popen([str(exe), str(per), str(seconds), f"{path}-{i}"],
                           stdout=subprocess.PIPE, text=True) for i in range(procs)]
    out = []
    for p in ps:
        stdout, _ = p.communicate(timeout=seconds + 60)
        if p.returncode != 0:
            raise RuntimeError(f"generator exited {p.returncode}")
        out.append(json.loads(stdout))
    return out


def lost_now(trace: Path) -> int:
    meta = json.loads((trace / "meta.json").read_text())
    return int(meta.get("lost_events", 0) or 0)


def generator_ceiling(exe: Path, seconds: float, procs: int, path: str) -> float:
    """Connects/s the generators reach untraced, flat out: the machine's ceiling."""
    gens = run_generators(exe, 0, seconds, procs, path)
    return float(sum(g["connects"] for g in gens) / max(g["seconds"] for g in gens))


def measure(seconds: float = 3.0, rates: tuple[int, ...] = DEFAULT_RATES, procs: int = 2,
            settle: float = 2.5) -> dict[str, Any]:
    import pyarrow.compute as pc

    from tracer import schema

    log(f"throughput: steps of {seconds:g}s, rates {rates}, load {load_avg()}")
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        tmp = Path(tmpd)
        exe = build_generator(tmp)
        missing = str(tmp / "no-such-socket")
        foreign = foreign_tracers()
        ceiling = generator_ceiling(exe, min(seconds, 2.0), procs, missing)
        foreign += foreign_tracers()
        log(f"  generator ceiling untraced: {ceiling:,.0f} connects/s"
            + (f" (another tracer was running: {foreign[0]})" if foreign else ""))
        trace = tmp / "throughput.trace"
        rec = Recorder.start(trace)
        try:
            time.sleep(settle)  # the post-attach snapshot work is not the steps' cost
            todo = list(rates)
            retried: set[int] = set()
            while todo:
                rate = todo.pop(0)
                lost0, cpu0, load = lost_now(trace), cpu_seconds(rec.proc.pid), load_avg()
                t0 = time.monotonic()
                gens = run_generators(exe, rate, seconds, procs, missing)
                gen_s = time.monotonic() - t0
                time.sleep(settle)  # > flush interval: the step is decoded, written, counted
                lost1, cpu1 = lost_now(trace), cpu_seconds(rec.proc.pid)
                events = sum(g["connects"] for g in gens)
                secs = max(g["seconds"] for g in gens)
                step = {
                    "target_rate": rate or None, "achieved_rate": events / secs,
                    "events": events, "lost": lost1 - lost0, "load": load,
                    "collector_cpu_s": cpu1 - cpu0, "wall_s": gen_s + settle,
                    "cpu_per_100k_s": (cpu1 - cpu0) / events * 1e5,
                    "pids": [g["pid"] for g in gens],
                    "foreign_tracers": foreign_tracers([rec.proc.pid]),
                }
                steps.append(step)
                log(f"  target {rate or 'max':>7} achieved {step['achieved_rate']:>9,.0f}/s "
                    f"lost {step['lost']:>8} collector cpu {step['collector_cpu_s']:.2f}s "
                    f"({step['cpu_per_100k_s']:.2f}s/100k) load {load}"
                    + (" (another tracer running)" if step["foreign_tracers"] else ""))
                if step["lost"] > 0:
                    if rate in retried:
                        break
                    # one retry: a neighbour's burst can cost a step its events once
                    retried.add(rate)
                    step["retried"] = True
                    todo.insert(0, rate)
        finally:
            stop_s, _ = rec.stop()
        t = schema.load(trace)
        sock = t.table("socket")
        for step in steps:
            rows = sock.filter(pc.is_in(sock["pid"], pa_array(step["pids"])))
            step["rows"] = rows.num_rows
            step["all_recorded"] = rows.num_rows == step["events"]
    # a rate counts as lossless only if its last attempt lost nothing
    final = {s["target_rate"]: s for s in steps}
    lossless = [s for s in final.values() if s["lost"] == 0 and s["all_recorded"]]
    best = max(lossless, key=lambda s: s["achieved_rate"]) if lossless else None
    at20k = final.get(20_000)
    return {
        "seconds_per_step": seconds, "generator_procs": procs, "generator_ceiling": ceiling,
        "ceiling_foreign_tracers": foreign,
        "steps": steps,
        "max_lossless_rate": best["achieved_rate"] if best else 0.0,
        "cpu_per_100k_at_max_s": best["cpu_per_100k_s"] if best else None,
        "lost_at_20k": at20k["lost"] if at20k else None,
        "cpu_per_100k_at_20k_s": at20k["cpu_per_100k_s"] if at20k else None,
        "stop_s": stop_s,
    }


def pa_array(values: list[int]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.int32())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default=",".join(str(r) for r in DEFAULT_RATES),
                    help="events/s per step; 0 = as fast as the generators go")
    ap.add_argument("--procs", type=int, default=2)
    args = ap.parse_args(argv)
    res = measure(args.seconds, tuple(int(r) for r in args.rates.split(",")), args.procs)
    print(json.dumps({k: v for k, v in res.items() if k != "steps"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
