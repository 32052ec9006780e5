"""Scheduler-concern overhead on a context-switch storm (issue 15's goal: <= 1.15x, 0 lost).

    sudo .venv/bin/python -m bench.sched_overhead [--rounds 7] [--trips 200000]
    sudo .venv/bin/python -m bench.sched_overhead --workload burst   # the realistic mix
    sudo .venv/bin/python -m bench.sched_overhead --paths   # raw vs tracepoint vs --no-sched

Workload: bench/workload_pingpong.py, two processes ping-ponging a byte over pipes (it
reports its own wall time and context switches; > 100k switches/s here). Each round runs it
untraced, then under `k3sprof record` (sched on: the default), then untraced, then under
`k3sprof record --no-sched`; the ratio is taken per adjacent pair (A B A C), so a noisy
neighbour shifts both halves of a pair alike. Attach time is not counted: each recording is
live before the workload starts. Lost events come from each trace's meta.json, and the
trace must hold the ping-pong's own CPU time (ground truth: its pids are in the sched table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import BENCH, Recorder, foreign_tracers, load_avg, log, run_json, summary

WORKLOAD = [sys.executable, "-m", "bench.workload_pingpong"]


#: --workload burst: bench/workload_burst.py at this scale (the realistic startup mix)
BURST_SCALE = 2.0
WORKLOAD_KIND = "pingpong"
#: --pin: the CPU both ping-pong processes are pinned to (None: unpinned). Unpinned, the two
#: sides of a round trip often sit on different CPUs, and on a VM an idle vCPU takes tens of
#: us to wake (a HLT exit to the host): the rate then swings between ~45k and ~190k
#: switches/s with whatever else keeps the other vCPU busy. Pinned, every round trip is two
#: same-CPU switches: a steady context-switch storm (> 150k/s here), which is what the goal
#: is about.
PIN: int | None = None


def _workload(trips: int, wrap: Sequence[str] = ()) -> dict[str, Any]:
    """One run of the workload, under `wrap` (a peer tracer that runs it) when given."""
    if WORKLOAD_KIND == "burst":
        from bench.overhead import burst_cmd

        r = run_json([*wrap, *burst_cmd(BURST_SCALE)], cwd=BENCH.parent)
        # same keys as the ping-pong's; the burst is one process (no ping-pong partner)
        return {**r, "wall_s": r["elapsed_s"], "child": r["pid"], "switches_per_s": 0.0}
    pin = [] if PIN is None else ["--cpu", str(PIN)]
    return run_json([*wrap, *WORKLOAD, "--trips", str(trips), *pin], cwd=BENCH.parent)


def _perf_sched(trips: int, out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The peer a user reaches for to see thread states: `perf sched record` (sched_switch,
    sched_wakeup & co. to a perf.data file, every event, no in-kernel folding) around the
    same workload. Its data rate is the other half of its cost."""
    w = _workload(trips, ["perf", "sched", "record", "-q", "-o", str(out), "--"])
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    return w, {"mb_per_s": size / 1e6 / w["wall_s"], "mb": size / 1e6}


STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def _bpf_cost(pid: int) -> dict[int, dict[str, int]]:
    """prog_id -> {run_cnt, run_time_ns} of every BPF program the process holds open
    (/proc/PID/fdinfo; counted only while kernel.bpf_stats_enabled is 1)."""
    from bench.probe_cost import prog_stats

    return prog_stats(pid)


def _traced(trips: int, out: Path, *extra: str,
            bpf_stats: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    rec = Recorder.start(out, *extra)
    old = STATS.read_text().strip()
    try:
        # per-program cost, an independent look at the overhead (the accounting itself
        # costs a little per program run: --no-bpf-stats for the wall ratio alone)
        STATS.write_text("1" if bpf_stats else "0")
        c0 = _bpf_cost(rec.proc.pid)
        w = _workload(trips)
        c1 = _bpf_cost(rec.proc.pid)
    finally:
        STATS.write_text(old)
        rec.stop()
    meta = json.loads((out / "meta.json").read_text())
    seen = None
    if "--no-sched" not in extra:
        from tracer import schema
        from tracer.analyzer.sched import SchedIndex

        ix = SchedIndex.from_trace(schema.load(out))
        # the two ping-pong processes must be in the trace, with their CPU time
        seen = sum(ix.states_between(p, meta["start_ns"], meta["sched"]["end_ns"])["cpu"]
                   for p in (w["pid"], w["child"]))
    names = {int(i): n.removeprefix("tracepoint__")
             for n, i in meta.get("programs", {}).items()}
    progs: dict[str, dict[str, int]] = {}
    for prog_id, a in c1.items():
        b = c0.get(prog_id, {"run_cnt": 0, "run_time_ns": 0})
        progs[names.get(prog_id, f"id {prog_id}")] = {
            "runs": a["run_cnt"] - b["run_cnt"], "ns": a["run_time_ns"] - b["run_time_ns"]}
    bpf_ns = sum(p["ns"] for p in progs.values())
    runs = sum(p["runs"] for p in progs.values())
    return w, {"lost": int(meta.get("lost_events", 0)), "rows": meta.get("rows", {}),
               "cpu_seen_ns": seen, "bpf_cpu_share": bpf_ns / (w["wall_s"] * 1e9),
               "bpf_ns_per_run": bpf_ns / max(1, runs), "programs": progs}


#: --paths: the sched-on recording once per hook path (docs/sched.md "Two hook paths")
VARIANTS = {"sched": (), "no-sched": ("--no-sched",)}
PATH_VARIANTS = {"raw": ("--sched-hooks", "raw"), "tracepoint": ("--sched-hooks", "tracepoint"),
                 "no-sched": ("--no-sched",)}


def measure(rounds: int = 7, trips: int = 200_000, *, no_bpf_stats: bool = False,
            workload: str = "pingpong", pin: int = 0, paths: bool = False,
            perf_sched: bool = False) -> dict[str, Any]:
    """Paired rounds (module docstring): ratios, BPF shares and lost events per variant;
    with perf_sched also `perf sched record` as a peer (its own untraced pair each round)."""
    global WORKLOAD_KIND, PIN
    WORKLOAD_KIND = workload
    PIN = None if pin < 0 else pin
    variants = PATH_VARIANTS if paths else VARIANTS
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    cpu_ratios: dict[str, list[float]] = {v: [] for v in variants}
    rates: list[float] = []
    lost: dict[str, list[int]] = {v: [] for v in variants}
    notes: list[str] = []
    bpf_share: dict[str, list[float]] = {v: [] for v in variants}
    per_run: dict[str, list[float]] = {v: [] for v in variants}
    # sched on: variant -> program -> per round (ns per run, runs per trip)
    per_prog: dict[str, dict[str, dict[str, list[float]]]] = {}
    peer: dict[str, list[float]] = {"ratio": [], "cpu_ratio": [], "mb_per_s": []}
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-sched-") as tmp:
        for r in range(rounds):
            for label, extra in variants.items():
                base = _workload(trips)
                w, info = _traced(trips, Path(tmp) / f"{label}{r}", *extra,
                                  bpf_stats=not no_bpf_stats)
                ratios[label].append(w["wall_s"] / base["wall_s"])
                cpu_ratios[label].append(w["cpu_s"] / base["cpu_s"])
                lost[label].append(info["lost"])
                bpf_share[label].append(info["bpf_cpu_share"])
                per_run[label].append(info["bpf_ns_per_run"])
                if label != "no-sched":
                    for name, p in info["programs"].items():
                        d = per_prog.setdefault(label, {}).setdefault(
                            name, {"ns_per_run": [], "runs_per_trip": [], "ns_per_trip": []})
                        d["ns_per_run"].append(p["ns"] / p["runs"] if p["runs"] else 0.0)
                        # per round trip of the ping-pong, per burst of --workload burst
                        unit = trips if workload == "pingpong" else 1
                        d["runs_per_trip"].append(p["runs"] / unit)
                        d["ns_per_trip"].append(p["ns"] / unit)
                rates.append(base["switches_per_s"])
                others = foreign_tracers()
                if others:
                    notes.append(f"round {r}: other tracers live: {others}")
                log(f"round {r} {label}: untraced {base['wall_s']:.3f}s traced "
                    f"{w['wall_s']:.3f}s ratio {ratios[label][-1]:.3f} cpu ratio "
                    f"{cpu_ratios[label][-1]:.3f} lost {info['lost']} "
                    f"bpf cpu {info['bpf_cpu_share']:.3f} of wall "
                    f"sched rows {info['rows'].get('sched', 0)} load {load_avg()}")
            if perf_sched and shutil.which("perf"):
                base = _workload(trips)
                w, info = _perf_sched(trips, Path(tmp) / f"perf{r}.data")
                peer["ratio"].append(w["wall_s"] / base["wall_s"])
                peer["cpu_ratio"].append(w["cpu_s"] / base["cpu_s"])
                peer["mb_per_s"].append(info["mb_per_s"])
                log(f"round {r} perf sched record: untraced {base['wall_s']:.3f}s traced "
                    f"{w['wall_s']:.3f}s ratio {peer['ratio'][-1]:.3f} data "
                    f"{info['mb_per_s']:.1f} MB/s load {load_avg()}")
    key = {v: v.replace("-", "_") for v in variants}
    res: dict[str, Any] = {"variants": list(variants)}
    if peer["ratio"]:
        res["perf_sched"] = {k: summary(v) for k, v in peer.items()}
    elif perf_sched:
        res["perf_sched"] = "perf not installed"
    for v in variants:
        res[f"ratio_{key[v]}"] = summary(ratios[v])
        res[f"cpu_ratio_{key[v]}"] = summary(cpu_ratios[v])
        res[f"bpf_cpu_share_{key[v]}"] = summary(bpf_share[v])
        res[f"bpf_ns_per_run_{key[v]}"] = summary(per_run[v])
        res[f"lost_{key[v]}"] = lost[v]
    for v, progs in per_prog.items():
        res[f"programs_{key[v]}"] = {
            n: {k: summary(x) for k, x in d.items()}
            for n, d in sorted(progs.items(), key=lambda kv: -sum(kv[1]["ns_per_trip"]))}
    res.update({"untraced_switches_per_s": summary(rates), "trips": trips,
                "workload": workload, "pinned_cpu": PIN, "notes": notes})
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--trips", type=int, default=200_000)
    ap.add_argument("--no-bpf-stats", action="store_true",
                    help="do not turn on kernel.bpf_stats_enabled (wall ratio only)")
    ap.add_argument("--workload", choices=("pingpong", "burst"), default="pingpong",
                    help="burst: bench/workload_burst.py --scale 2 instead of the ping-pong "
                         "(is sched on affordable on the realistic startup mix?)")
    ap.add_argument("--pin", type=int, default=0, metavar="CPU",
                    help="pin the ping-pong to this CPU (default 0; -1: unpinned)")
    ap.add_argument("--perf-sched", action="store_true",
                    help="also `perf sched record` around the same workload (a peer)")
    ap.add_argument("--paths", action="store_true",
                    help="sched on once per hook path (raw tracepoints, tracepoints), "
                         "interleaved with --no-sched, each paired with its own untraced run")
    a = ap.parse_args(argv)
    res = measure(a.rounds, a.trips, no_bpf_stats=a.no_bpf_stats, workload=a.workload,
                  pin=a.pin, paths=a.paths, perf_sched=a.perf_sched)
    print(json.dumps(res))
    what = f"ping-pong {a.trips} trips" if a.workload == "pingpong" else \
        f"burst (scale {BURST_SCALE:g})"
    parts = []
    for v in res["variants"]:
        k = v.replace("-", "_")
        s_ = res[f"ratio_{k}"]
        parts.append(f"{v} {s_['median']:.3f} ({s_['min']:.3f}-{s_['max']:.3f}, n={s_['n']}), "
                     f"CPU {res[f'cpu_ratio_{k}']['median']:.3f}, lost {sum(res[f'lost_{k}'])}, "
                     f"BPF/wall {res[f'bpf_cpu_share_{k}']['median']:.3f}")
    print(f"{what}, untraced {res['untraced_switches_per_s']['median']:.0f} switches/s; "
          "traced/untraced wall: " + "; ".join(parts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
