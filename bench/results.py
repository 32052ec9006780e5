"""A bench run as a machine-readable results file, with verdicts computed from units.

`make bench` (bench/run.py) writes one file per run into bench/runs/ (committed):

    {"format": 1, "date": ISO UTC, "commit": "<sha>[+dirty]", "command": "...",
     "machine": {...}, "load": {"start": x, "end": y}, "total_s": s,
     "measures": [Measure, ...], "raw": {phase: what the phase returned}}

Every published figure is a Measure: its median, min, max and n, in its unit, with the
measurement's resolution, the goal (in its own unit: MB and MiB are converted, never compared
as numbers) and a verdict computed here, never typed:

* "met": the median meets the goal by MORE than the resolution;
* "at the limit": the median is within the resolution of the goal (either side);
* "not met": it misses by more than the resolution;
* "within noise": a traced/untraced ratio whose median is below 1.0 (tracing cannot make a
  program faster: such a ratio says the overhead is below what the run can resolve).

bench/render.py renders the README's and docs/bench.md's tables from the newest file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
from pathlib import Path
from typing import Any, TypedDict

from bench import ROOT

RUNS = Path(__file__).resolve().parent / "runs"
FORMAT = 1

#: unit -> (dimension, factor to the dimension's base unit)
UNITS: dict[str, tuple[str, float]] = {
    "x": ("ratio", 1.0),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "us": ("time", 1e-6),
    "ns": ("time", 1e-9),
    "MiB": ("bytes", float(2**20)),
    "MB": ("bytes", 1e6),
    "events/s": ("rate", 1.0),
    "count": ("count", 1.0),
    "%": ("share", 0.01),
}

VERDICTS = ("met", "at the limit", "not met", "within noise")


class Goal(TypedDict):
    op: str  # "<=" | ">="
    value: float
    unit: str


class Measure(TypedDict):
    id: str
    name: str
    unit: str
    #: the smallest difference the measurement can tell (a clock tick, a poll interval, ...)
    resolution: float
    median: float
    min: float
    max: float
    n: int
    goal: Goal | None
    verdict: str | None
    note: str


def convert(value: float, unit: str, to: str) -> float:
    """value in `unit` expressed in `to` (same dimension only: MiB <-> MB, ms <-> s)."""
    d1, f1 = UNITS[unit]
    d2, f2 = UNITS[to]
    if d1 != d2:
        raise ValueError(f"cannot compare {unit} with {to}")
    return value * f1 / f2


def verdict(median: float, unit: str, resolution: float, goal: Goal | None) -> str | None:
    """The verdict of a median against a goal (module docstring); None without a goal."""
    if goal is None or math.isnan(median):
        return None
    if UNITS[unit][0] == "ratio" and median < 1.0:
        return "within noise"
    target = convert(goal["value"], goal["unit"], unit)
    margin = (target - median) if goal["op"] == "<=" else (median - target)
    tol = resolution * 1e-6  # float noise: 0.16 - 0.15 must read as one 0.01 tick
    if margin > resolution + tol:
        return "met"
    if margin >= -resolution - tol:
        return "at the limit"
    return "not met"


def measure(mid: str, name: str, unit: str, resolution: float, s: dict[str, Any],
            goal: Goal | None = None, note: str = "", scale: float = 1.0) -> Measure:
    """A Measure from a bench summary() ({n, median, min, max}), scaled into `unit`."""
    med, lo, hi = (float(s.get(k, math.nan)) * scale for k in ("median", "min", "max"))
    return {"id": mid, "name": name, "unit": unit, "resolution": resolution,
            "median": med, "min": lo, "max": hi, "n": int(s.get("n", 0)),
            "goal": goal, "verdict": verdict(med, unit, resolution, goal), "note": note}


def single(mid: str, name: str, unit: str, resolution: float, value: float,
           goal: Goal | None = None, note: str = "") -> Measure:
    """A measure taken once (n=1)."""
    return measure(mid, name, unit, resolution,
                   {"n": 1, "median": value, "min": value, "max": value}, goal, note)


def _le(value: float, unit: str) -> Goal:
    return {"op": "<=", "value": value, "unit": unit}


def _ge(value: float, unit: str) -> Goal:
    return {"op": ">=", "value": value, "unit": unit}


#: per-burst timing is CLOCK_MONOTONIC ns: a ratio resolves far below its third decimal
RATIO_RES = 0.001
#: /proc/PID/stat CPU times count clock ticks (USER_HZ 100)
TICK_S = 0.01


#: phase -> the measure id its "not measured" row takes when the phase failed or was skipped
PHASE_IDS = {"overhead": "overhead", "overhead_allcores": "overhead_allcores",
             "probe_cost": "probe_cost.total", "throughput": "throughput.lossless",
             "attach": "attach", "scale": "scale", "dataset": "dataset", "stacks": "stacks",
             "sched": "sched", "whatif_demo": "whatif_demo"}


def measures(res: dict[str, Any]) -> list[Measure]:
    """Every published figure of a bench run (bench/run.py's result dict), with its goal; a
    phase that failed or was skipped is one "not measured" row saying why (never silent)."""
    out: list[Measure] = []
    for phase, mid in PHASE_IDS.items():
        why = res.get(phase)
        if isinstance(why, str):
            out.append(single(f"{mid}.not_measured", f"phase `{phase}`", "count", 1.0,
                              math.nan, note=f"not measured: {why}"))
    for phase, goal_x in (("overhead", 1.03), ("overhead_allcores", 1.05)):
        ov = res.get(phase)
        if not isinstance(ov, dict) or "tracers" not in ov:
            continue
        allcores = phase == "overhead_allcores"
        exp = ov["expected_syscalls"]
        what = (f"{exp['connect']:,} connects, {exp['execve']} execs, {exp['listen']} listens"
                + (f"; {ov.get('parallel', 1)} bursts at once, one per core" if allcores else ""))
        for tracer, t in ov["tracers"].items():
            ours = tracer == "k3sprof"
            seen = f"{t['complete_runs']}/{t.get('runs', t['ratio']['n'])} runs saw every event"
            if t.get("lost"):
                seen += f", {t['lost']} lost"
            out.append(measure(
                f"{phase}.{tracer}.ratio",
                f"burst wall time under {tracer} / untraced ({what})", "x", RATIO_RES,
                t["ratio"], _le(goal_x, "x") if ours else None,
                f"fastest/fastest {t['best_ratio']:.3f}x; {seen}"))
            if ours and t.get("collector_cpu_s"):
                out.append(measure(
                    f"{phase}.recorder_cpu", "recorder CPU per burst (burst window incl. "
                    "1.5 s drain)" + (", one burst per core" if allcores else ""), "s", TICK_S,
                    t["collector_cpu_s"], _le(0.15, "s")))
        for tracer, why in ov.get("skipped", {}).items():
            out.append(single(f"{phase}.{tracer}.ratio", f"burst wall time under {tracer}",
                              "x", RATIO_RES, math.nan, note=f"not measured: {why}"))
    pc = res.get("probe_cost")
    if isinstance(pc, dict) and "programs" in pc:
        out.append(measure("probe_cost.total", "BPF time per burst, all programs "
                           "(kernel.bpf_stats_enabled)", "ms", 0.001, pc["bpf_s_per_burst"],
                           scale=1e3))
        busy = sorted(pc["programs"].items(), key=lambda kv: -kv[1]["ms_per_burst"]["median"])
        for name, p in busy:
            if p["runs"]["median"]:
                out.append(measure(f"probe_cost.{name}", f"probe `{name}`: time per run", "ns",
                                   1.0, p["ns_per_run"],
                                   note=f"{p['runs']['median']:.0f} runs per burst"))
    tp = res.get("throughput")
    if isinstance(tp, dict) and "steps" in tp:
        rates = sorted(s["target_rate"] for s in tp["steps"] if s["target_rate"])
        gaps = [b - a for a, b in itertools.pairwise(rates)]
        out.append(single("throughput.lossless", "highest event rate with 0 lost (default "
                          "buffer)", "events/s", float(max(gaps) if gaps else 0),
                          float(tp["max_lossless_rate"]), _ge(500_000, "events/s"),
                          f"resolution = the ramp's step; untraced generator ceiling "
                          f"{tp['generator_ceiling']:,.0f}/s"))
    at = res.get("attach")
    if isinstance(at, dict) and "line_s" in at:
        out.append(measure("attach.first_event", "`record` start -> first event recorded "
                           "(bytecode cache warm)", "s", 0.001, at["first_event_s"],
                           _le(0.5, "s")))
        out.append(measure("attach.line", "`record` start -> `recording` line (cache warm)",
                           "s", 0.001, at["line_s"], _le(0.5, "s")))
        out.append(measure("attach.stop", "stop: SIGINT -> recorder exited (idle)", "s", 0.01,
                           at["stop_s"], _le(0.3, "s"),
                           "resolution: the bench polls for the exit every 10 ms"))
        out.append(measure("attach.peak_rss", "recorder peak RSS, idle (its VmHWM)", "MiB",
                           1 / 1024, at["peak_rss_mb"], _le(100, "MB")))
    st = res.get("stacks")
    if isinstance(st, dict) and "burst" in st:
        b = st["burst"]
        out.append(measure("stacks.burst.ratio", "burst wall time, stacks on / --no-stacks (the "
                           "burst as the recorded command: every event takes a user stack)",
                           "x", RATIO_RES, b["ratio_on_off"], _le(1.02, "x"),
                           f"paired rounds, scale {b['scale']:g}"))
        sp = st["sampling"]
        out.append(measure("stacks.sampler_cpu", f"on-CPU sampler at {sp['hz']} Hz, both cores "
                           "busy: its BPF time, % of one CPU (kernel.bpf_stats_enabled)", "%",
                           0.001, sp["sampler_cpu_fraction"], _le(1.0, "%"),
                           f"recorder's own extra CPU for the samples "
                           f"{100 * sp['recorder_extra_fraction']['median']:.2f} % of one CPU "
                           "(median)", scale=100.0))
        sy = st["symbolise"]
        out.append(measure("stacks.symbolise", f"symbolise {sy['samples']:,} samples (extract "
                           "at stop + naming every distinct stack), containerd's .gopclntab",
                           "s", 0.01, sy["s"], _le(5.0, "s")
                           if sy["samples"] >= 1_000_000 else None))
    sd = res.get("sched")
    if isinstance(sd, dict) and "pingpong" in sd:
        pp = sd["pingpong"]
        out.append(measure("sched.pingpong.ratio", f"pipe ping-pong pinned to one CPU "
                           f"({pp['trips']:,} round trips, "
                           f"{pp['untraced_switches_per_s']['median']:,.0f} switches/s "
                           "untraced), default recorder / untraced", "x", RATIO_RES,
                           pp["ratio_sched"], _le(1.10, "x"),
                           f"--no-sched {pp['ratio_no_sched']['median']:.3f}x; lost "
                           f"{sum(pp['lost_sched'])}"))
        ps = pp.get("perf_sched")
        if isinstance(ps, dict):
            out.append(measure("sched.pingpong.perf_sched", "the same ping-pong under `perf "
                               "sched record` (the peer for thread states) / untraced", "x",
                               RATIO_RES, ps["ratio"], None,
                               f"{ps['mb_per_s']['median']:.1f} MB/s of perf.data"))
        elif isinstance(ps, str):
            out.append(single("sched.pingpong.perf_sched", "the same ping-pong under `perf "
                              "sched record`", "x", RATIO_RES, math.nan,
                              note=f"not measured: {ps}"))
        sp_ = sd["stop"]
        out.append(measure("sched.stop.detach", "stop: SIGINT -> every program detached "
                           "(idle default recorder)", "s", 0.002, sp_["last_detach_s"],
                           _le(0.5, "s"), f"the recorder itself exits in "
                           f"{sp_['exit_s']['median']:.3f} s (median); a forked child "
                           "finishes the detach, one RCU grace period per tracepoint"))
    ds = res.get("dataset")
    if isinstance(ds, dict) and "rows" in ds:
        for r in ds["rows"]:
            walls = [x["wall_s"] for x in r["runs"]]
            loads = ", ".join(f"{x['load']:.1f}" for x in r["runs"])
            slug = re.sub(r"[^a-z0-9]+", "_", r["config"].lower()).strip("_")
            out.append(measure(
                f"dataset.{slug}", f"`k3sprof dataset` of {ds['traces']:,} traces, {r['config']}",
                "s", 0.01, {"n": len(walls), "median": r["wall_s"], "min": min(walls),
                            "max": max(walls)},
                note=f"{r['per_trace_ms']:.1f} ms per trace, speedup {r['speedup']:.2f}x, CPU "
                     f"{r['cpu_per_trace_ms']:.1f} ms per trace; load before {loads}"))
    wd = res.get("whatif_demo")
    if isinstance(wd, dict) and "variants" in wd:
        b = wd["base"]
        rb = b.get("recorded")  # several base recordings (since 2026-12-07 17:00 UTC)
        recorded = (f"recorded at {b['interval_ms']:g} ms: {b['recorded_ms']:.1f} ms" if rb is None
                    else f"recorded {rb['n']} times at {b['interval_ms']:g} ms: "
                    f"{rb['median']:.1f} ms ({rb['min']:.1f}-{rb['max']:.1f})")
        for v in wd["variants"]:
            m = v["measured"]
            pe = v.get("predicted_each")
            predicted = (f"predicted {v['predicted_ms']:.1f} ms" if pe is None else
                         f"predicted {v['predicted_ms']:.1f} ms (median of {pe['n']} "
                         f"recordings' predictions; each {pe['min']:.1f}-{pe['max']:.1f})")
            out.append(single(
                f"whatif_demo.{v['interval_ms']:g}ms",
                f"`whatif poll:` on the etcd + containerd demo: |predicted - measured median| "
                f"of the end at {v['interval_ms']:g} ms polls ({recorded})", "ms", 0.1,
                v["error_ms"], _le(round(v["allowed_ms"], 1), "ms"),
                f"{predicted}, measured {m['median']:.1f} ms "
                f"({m['min']:.1f}-{m['max']:.1f}, n={m['n']}); goal: 10 % of the median or "
                f"20 ms; /health request timeout {wd['request_timeout_s'] * 1000:g} ms"
                + (f"; etcd election timeout {wd['etcd_election_ms']} ms"
                   if wd.get("etcd_election_ms") else "")))
    sc = res.get("scale")
    if isinstance(sc, dict) and "sizes" in sc:
        for row in sc["sizes"]:
            for cmd in ("analyze", "report"):
                r = row.get(cmd)
                if not r or r.get("exit"):
                    continue
                k = row["events"] // 1000
                big = row["events"] >= 1_000_000
                goal = (_le(5 if cmd == "analyze" else 8, "s") if big else None)
                out.append(single(f"scale.{cmd}.{k}k", f"`k3sprof {cmd}` of {k}k events, wall",
                                  "s", 0.01, r["wall_s"], goal))
                out.append(single(f"scale.{cmd}.{k}k.rss", f"`k3sprof {cmd}` of {k}k events, "
                                  "peak RSS", "MiB", 1 / 1024, r["peak_rss_mb"],
                                  _le(600, "MiB") if big and cmd == "analyze" else None))
    return out


def commit() -> str:
    """The commit measured, "+dirty" when the tree has uncommitted changes."""
    def git(*args: str) -> str:
        p = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return p.stdout.strip()

    sha = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def newest(kind: str = "bench") -> Path | None:
    """The newest results file of a kind ("bench": YYYY-MM-DDTHHMMZ.json)."""
    files = sorted(p for p in RUNS.glob("*.json") if p.name[:1].isdigit()) if kind == "bench" \
        else sorted(RUNS.glob(f"{kind}-*.json"))
    return files[-1] if files else None


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: results format {data.get('format')}, expected {FORMAT}")
    return data
