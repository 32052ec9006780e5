"""Per-probe cost: what each BPF program of the recorder costs per event, on the burst.

    sudo .venv/bin/python -m bench.probe_cost [--runs 3] [--scale 2.0]

The kernel counts, per loaded BPF program, how often it ran and for how long
(`run_cnt`, `run_time_ns`) once `kernel.bpf_stats_enabled` is 1 (it is 0 by default: the
counting itself costs two clock reads per run). This turns it on for the duration of the
measurement only (and back to what it was, even on failure), starts a recorder, runs the
burst, and reads every program the recorder holds from /proc/PID/fdinfo. The program names
come from the trace's meta.json ("programs": name -> kernel prog id).

The table gives per program: runs per burst, ns per run (median over the runs), and the
program's total time per burst. Their sum is what the probes cost the traced workload, the
in-kernel half of the overhead (the collector's CPU is the other half, see bench.overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import Recorder, load_avg, log, run_json, summary
from bench.overhead import burst_cmd

STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


def prog_stats(pid: int) -> dict[int, dict[str, int]]:
    """prog_id -> {run_cnt, run_time_ns} for every BPF program fd that process holds."""
    out: dict[int, dict[str, int]] = {}
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = fdinfo.read_text()
        except OSError:
            continue
        if "prog_type:" not in text:
            continue
        kv = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        out[int(kv["prog_id"])] = {"run_cnt": int(kv.get("run_cnt", 0)),
                                   "run_time_ns": int(kv.get("run_time_ns", 0))}
    return out


def one_run(tmp: Path, scale: float) -> dict[str, Any]:
    from tracer import schema

    trace = tmp / "probe_cost.trace"
    rec = Recorder.start(trace)
    try:
        before = prog_stats(rec.proc.pid)
        burst = run_json(burst_cmd(scale))
        after = prog_stats(rec.proc.pid)
    finally:
        rec.stop()
    # the recorder names its programs in meta.json (program -> kernel prog id): BPF's own
    # name field is cut to 15 characters, "tracepoint__sys" for most of them
    names = {int(i): n for n, i in schema.load(trace).meta.get("programs", {}).items()}
    progs = {}
    for prog_id, a in after.items():
        b = before.get(prog_id, {"run_cnt": 0, "run_time_ns": 0})
        name = names.get(prog_id) or f"id {prog_id}"
        progs[name.removeprefix("tracepoint__")] = {
            "runs": a["run_cnt"] - b["run_cnt"], "ns": a["run_time_ns"] - b["run_time_ns"]}
    return {"named": progs, "burst_s": burst["elapsed_s"], "load": load_avg()}


def measure(runs: int = 3, scale: float = 2.0) -> dict[str, Any]:
    log(f"probe_cost: {runs} runs, burst scale {scale}, load {load_avg()}")
    old = STATS_SYSCTL.read_text().strip()
    results = []
    try:
        STATS_SYSCTL.write_text("1")
        with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
            for i in range(runs):
                r = one_run(Path(tmpd), scale)
                results.append(r)
                log(f"  run {i}: {sum(p['runs'] for p in r['named'].values())} program runs, "
                    f"{sum(p['ns'] for p in r['named'].values()) / 1e6:.1f} ms in BPF, "
                    f"load {r['load']}")
    finally:
        STATS_SYSCTL.write_text(old)
    per_name: dict[str, dict[str, list[float]]] = {}
    totals = []
    for r in results:
        totals.append(sum(p["ns"] for p in r["named"].values()) / 1e9)
        for name, p in r["named"].items():
            d = per_name.setdefault(name, {"runs": [], "ns_per_run": [], "ms_per_burst": []})
            d["runs"].append(p["runs"])
            d["ns_per_run"].append(p["ns"] / p["runs"] if p["runs"] else 0.0)
            d["ms_per_burst"].append(p["ns"] / 1e6)
    progs = {n: {k: summary(v) for k, v in d.items()} for n, d in per_name.items()}
    return {"runs": runs, "scale": scale, "programs": progs, "bpf_s_per_burst": summary(totals),
            "load": [r["load"] for r in results]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=2.0)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.runs, args.scale), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
