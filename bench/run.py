"""Run every benchmark and print one markdown table (plus the machine it ran on).

    sudo .venv/bin/python -m bench.run [--quick] [--only overhead,throughput,attach,scale]

`make bench` calls this. It takes about 5-8 minutes on a 2-core box; --quick is a
one-minute sanity pass (fewer rounds, smaller traces), not a measurement. Results go to
bench/results/latest.md and latest.json (git-ignored; docs/bench.md holds a copy).
Phases that need root (everything that records) are skipped, with the reason, without it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import RESULTS, is_root, load_avg, log, summary

PHASES = ("overhead", "overhead_allcores", "probe_cost", "throughput", "attach", "scale",
          "dataset", "stacks", "sched", "whatif_demo")


def _first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "not installed"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    distro = "unknown"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            distro = line.split("=", 1)[1].strip('"')
    try:
        import bcc

        bcc_version = getattr(bcc, "__version__", "present")
    except ImportError:
        bcc_version = "missing"
    import os

    return {
        "cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(), "distro": distro,
        "python": platform.python_version(), "bcc": bcc_version,
        "bpftrace": _first_line(["bpftrace", "--version"]),
        "strace": _first_line(["strace", "--version"]),
        "perf": _first_line(["perf", "--version"]),
        "load_at_start": load_avg(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _r(s: dict[str, float], fmt: str = "{:.3f}", suffix: str = "") -> str:
    """'median (min-max)' of a summary()."""
    if not s or not s.get("n"):
        return "n/a"
    return (f"{fmt.format(s['median'])}{suffix} "
            f"({fmt.format(s['min'])}-{fmt.format(s['max'])}, n={s['n']})")


def _step(s: dict[str, Any]) -> str:
    """One throughput step: 'target: achieved/s lost N'."""
    target = f"{s['target_rate'] // 1000}k" if s["target_rate"] else "max"
    retried = " (then retried)" if s.get("retried") else ""
    return f"{target}: {s['achieved_rate'] / 1000:.0f}k/s lost {s['lost']}{retried}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def _ratio_met(ratio: float, goal: float) -> str:
    """A traced run cannot be faster than an untraced one: below 1.0 is noise, not a pass."""
    if ratio < 1.0:
        return "within noise"
    return _met(ratio <= goal)


def _overhead_rows(rows: list[tuple[str, str, str, str]], phase: str, ov: Any) -> None:
    allcores = phase == "overhead_allcores"
    if not isinstance(ov, dict) or "tracers" not in ov:
        if ov:
            rows.append((phase, "-", f"skipped: {ov}", "n/a"))
        return
    tr = ov["tracers"]
    exp = ov["expected_syscalls"]
    par = ov.get("parallel", 1)
    events = (f"{exp['connect']} connects, {exp['execve']} execs, {exp['listen']} listens"
              + (f"; {par} bursts at once, one per core" if allcores else ""))
    k = tr.get("k3sprof", {})
    b = tr.get("bpftrace", {})
    goal_x = 1.05 if allcores else 1.03
    for name, t in tr.items():
        goal = f"<= {goal_x}x" if name == "k3sprof" else "-"
        met = _ratio_met(k["ratio"]["median"], goal_x) if name == "k3sprof" else "n/a"
        seen = f"{t['complete_runs']}/{t.get('runs', t['ratio']['n'])} runs saw every event"
        if t["pairs_used"] != "clean":
            seen += f"; only {t['clean_pairs']} pairs free of other tracers, all used"
        else:
            seen += f"; ratios over the {t['clean_pairs']} pairs free of other tracers"
        if t.get("lost"):
            seen += f", {t['lost']} lost"
        if t.get("load"):
            seen += f"; load avg {_r(t['load'], '{:.1f}')}"
        rows.append((f"{phase}: burst wall time under {name} / untraced ({events})", goal,
                     f"x{_r(t['ratio'])}; fastest/fastest x{t['best_ratio']:.3f}; "
                     f"burst CPU x{_r(t['cpu_ratio'])}; {seen}", met))
        if t.get("collector_cpu_s"):
            c = t["collector_cpu_s"]
            rows.append((f"{phase}: recorder CPU per burst (burst window incl. 1.5 s drain)",
                         "<= 0.15 s", _r(c, "{:.3f}", " s") + "; live->exit incl. setup and "
                         f"stop {_r(t['collector_cpu_total_s'], '{:.2f}', ' s')}",
                         _met(c["median"] <= 0.15)))
    if k and b:
        rows.append((f"{phase}: k3sprof no worse than bpftrace (median wall ratio)",
                     "k3sprof <= bpftrace",
                     f"{k['ratio']['median']:.3f} vs {b['ratio']['median']:.3f}",
                     _met(k["ratio"]["median"] <= b["ratio"]["median"])))
    for name, why in ov.get("skipped", {}).items():
        rows.append((f"{phase}: {name}", "-", f"skipped: {why}", "n/a"))


def table(res: dict[str, Any]) -> str:
    """One markdown table: measure | goal | measured (median (min-max)) | goal met."""
    rows: list[tuple[str, str, str, str]] = []
    for phase in ("overhead", "overhead_allcores"):
        _overhead_rows(rows, phase, res.get(phase))
    pc_ = res.get("probe_cost")
    if isinstance(pc_, dict) and "programs" in pc_:
        rows.append(("probes: BPF time per burst, all programs (kernel.bpf_stats_enabled)", "-",
                     _r({k: v * 1e3 if k != "n" else v
                         for k, v in pc_["bpf_s_per_burst"].items()}, "{:.1f}", " ms"),
                     "n/a"))
        busy = sorted(pc_["programs"].items(), key=lambda kv: -kv[1]["ms_per_burst"]["median"])
        for name, p in busy:
            if not p["runs"]["median"]:
                continue
            rows.append((f"probe `{name}`: ns per run; runs per burst", "-",
                         f"{_r(p['ns_per_run'], '{:.0f}', ' ns')}; "
                         f"{p['runs']['median']:.0f} runs, "
                         f"{p['ms_per_burst']['median']:.2f} ms per burst", "n/a"))
    elif pc_:
        rows.append(("probe_cost", "-", f"skipped: {pc_}", "n/a"))
    tp = res.get("throughput")
    if isinstance(tp, dict) and "steps" in tp:
        rate = tp["max_lossless_rate"]
        rows.append(("throughput: highest rate with 0 lost (default buffer)", ">= 500k/s",
                     f"{rate:,.0f} events/s (generator ceiling untraced "
                     f"{tp['generator_ceiling']:,.0f}/s)", _met(rate >= 500_000)))
        rows.append(("throughput: lost events at 20k/s", "0", str(tp["lost_at_20k"]),
                     _met(tp["lost_at_20k"] == 0 if tp["lost_at_20k"] is not None else None)))
        cpu = tp["cpu_per_100k_at_max_s"]
        rows.append(("throughput: collector CPU per 100k events (at max lossless rate)", "-",
                     f"{cpu:.2f} s" if cpu is not None else "n/a", "n/a"))
        steps = "; ".join(_step(s) for s in tp["steps"])
        rows.append(("throughput: ramp (target: achieved, lost)", "-", steps, "n/a"))
    elif tp:
        rows.append(("throughput", "-", f"skipped: {tp}", "n/a"))
    at = res.get("attach")
    if isinstance(at, dict) and "line_s" in at:
        line = at["line_s"]
        rows.append(("attach: `record` start -> `recording` line (bytecode cache warm, "
                     f"{at.get('warm_from_cache', '?')} runs loaded from it)", "<= 0.5 s",
                     _r(line, "{:.2f}", " s"), _met(line["median"] <= 0.5)))
        first = at["first_event_s"]
        rows.append(("attach: `record` start -> first event recorded", "<= 0.5 s",
                     _r(first, "{:.2f}", " s"),
                     _met(first["median"] <= 0.5 if first.get("n") else None)))
        rows.append(("attach breakdown: interpreter + CLI before go-live, imports + sources after",
                     "-",
                     f"{_r(at['before_run_s'], '{:.2f}', ' s')}; `python -c pass` "
                     f"{at['python_start_s']:.2f} s, `k3sprof --version` "
                     f"{at['cli_start_s']:.2f} s, `import bcc` {at['import_bcc_s']:.2f} s",
                     "n/a"))
        rows.append(("attach breakdown: load + attach from the cache (meta compile_s)", "-",
                     _r(at["compile_s"], "{:.2f}", " s"), "n/a"))
        rows.append(("stop: SIGINT -> recorder exited (idle recording)", "<= 0.3 s",
                     _r(at["stop_s"], "{:.2f}", " s"), _met(at["stop_s"]["median"] <= 0.3)))
        rows.append(("recorder peak RSS (its VmHWM, MiB, idle recording)", "<= 100 MB",
                     _r(at["peak_rss_mb"], "{:.0f}", " MiB"),
                     _met(at["peak_rss_mb"]["median"] <= 100)))
        cold = at.get("cold") or {}
        if cold.get("line_s", {}).get("n"):
            rows.append(("attach, cold bytecode cache (BCC compiles): start -> `recording`; "
                         "compile; peak RSS", "-",
                         f"{_r(cold['line_s'], '{:.2f}', ' s')}; "
                         f"{_r(cold['compile_s'], '{:.2f}', ' s')}; "
                         f"{_r(cold['peak_rss_mb'], '{:.0f}', ' MB')}", "n/a"))
    elif at:
        rows.append(("attach", "-", f"skipped: {at}", "n/a"))
    sc = res.get("scale")
    if isinstance(sc, dict) and "sizes" in sc:
        for name in ("info", "analyze", "report"):
            if name in sc["missing"]:
                rows.append((f"scale: {name}", "-", "command not in this tree yet", "n/a"))
                continue
            cells = []
            for row in sc["sizes"]:
                r = row.get(name)
                if r is None:
                    continue
                cell = (f"{row['events'] // 1000}k: {r['wall_s']:.1f} s, "
                        f"{r['peak_rss_mb']:.0f} MiB")
                if r.get("output_mb") is not None:
                    cell += f", {r['output_mb']:.1f} MB html"
                if r["exit"]:
                    cell += f" FAILED ({r['error']})"
                cells.append(cell)
            g = sc["growth_exponent"].get(name)
            cells.append(f"time ~ events^{g:.2f}" if g is not None else "growth n/a")
            goal = "report 100k < 10 s, < 10 MB" if name == "report" else "near-linear"
            met = None
            if name == "report":
                r100 = next((row["report"] for row in sc["sizes"]
                             if row["events"] == 100_000 and row.get("report")), None)
                if r100:
                    met = (r100["exit"] == 0 and r100["wall_s"] < 10
                           and r100.get("output_mb", 99) < 10)
            elif g is not None:
                met = g <= 1.15
            rows.append((f"scale: `k3sprof {name}` (wall, peak RSS)", goal, "; ".join(cells),
                         _met(met)))
    elif sc:
        rows.append(("scale", "-", f"skipped: {sc}", "n/a"))
    out = ["| measure | goal | measured: median (min-max, n) | met |",
           "| --- | --- | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def machine_text(m: dict[str, Any]) -> str:
    return (f"Machine: {m['cpus']} x {m['cpu']}, {m['memory_gib']} GiB, kernel {m['kernel']}, "
            f"{m['distro']}, Python {m['python']}, BCC {m['bcc']}, {m['bpftrace']}, "
            f"{m['strace']}" + (f", {m['perf']}" if m.get("perf") else "")
            + f". Load average at start {m['load_at_start']}"
            + (f", at end {m['load_at_end']}" if "load_at_end" in m else "")
            + f" (ratios are per interleaved pair). {m['date']}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="a fast sanity pass, not a measurement")
    ap.add_argument("--only", default=",".join(PHASES), help="comma-separated phases")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    phases = [p for p in args.only.split(",") if p]
    bad = [p for p in phases if p not in PHASES]
    if bad:
        print(f"bench: unknown phase(s) {', '.join(bad)} (choose from {', '.join(PHASES)})",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    res: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    root = is_root()
    for phase in phases:
        if phase not in ("scale", "dataset") and not root:
            res[phase] = "needs root (it records): run with sudo"
            log(f"{phase}: skipped, needs root")
            continue
        log(f"{phase}: load average {load_avg()}")
        try:
            if phase == "overhead":
                from bench import overhead

                res[phase] = overhead.measure(rounds=3 if args.quick else 9,
                                              scale=0.3 if args.quick else 2.0)
            elif phase == "overhead_allcores":
                import os

                from bench import overhead

                res[phase] = overhead.measure(rounds=2 if args.quick else 5,
                                              scale=0.3 if args.quick else 2.0,
                                              tracers=("k3sprof", "bpftrace"),
                                              parallel=os.cpu_count() or 2)
            elif phase == "probe_cost":
                from bench import probe_cost

                res[phase] = probe_cost.measure(runs=1 if args.quick else 3,
                                                scale=0.3 if args.quick else 2.0)
            elif phase == "throughput":
                from bench import throughput

                res[phase] = throughput.measure(
                    seconds=1.0 if args.quick else 3.0,
                    rates=(20_000, 100_000) if args.quick else throughput.DEFAULT_RATES)
            elif phase == "attach":
                from bench import attach

                res[phase] = attach.measure(runs=2 if args.quick else 5)
            elif phase == "dataset":
                from bench import dataset

                res[phase] = dataset.measure(40 if args.quick else 1000,
                                             (1, 2) if args.quick else (1, 2, 4),
                                             dask=2, rounds=1 if args.quick else 3,
                                             command="sudo make bench")
            elif phase == "stacks":
                from bench import stacks_overhead, symbols

                n = 100_000 if args.quick else 1_000_000
                ex, nm = symbols.bench_samples("/usr/bin/containerd", n, 1 if args.quick else 3)
                res[phase] = {
                    "burst": stacks_overhead.burst(2 if args.quick else 7,
                                                   0.3 if args.quick else 2.0),
                    "sampling": stacks_overhead.sampling(3.0 if args.quick else 6.0, 49,
                                                         1 if args.quick else 3),
                    "symbolise": {"samples": n, "s": summary([a + b for a, b in zip(ex, nm)])},
                }
            elif phase == "sched":
                from bench import sched_overhead, stop

                res[phase] = {
                    "pingpong": sched_overhead.measure(2 if args.quick else 7,
                                                       20_000 if args.quick else 200_000,
                                                       perf_sched=True),
                    "stop": stop.measure(2 if args.quick else 5),
                }
            elif phase == "whatif_demo":
                from bench import whatif_demo

                res[phase] = whatif_demo.measure(runs=2 if args.quick else 5,
                                                 variants=(100.0,) if args.quick
                                                 else (100.0, 500.0),
                                                 bases=2 if args.quick else 5)
            elif phase == "scale":
                from bench import scale

                res[phase] = scale.measure((10_000, 50_000) if args.quick
                                           else scale.DEFAULT_SIZES)
        except Exception as e:  # one broken phase must not lose the others' numbers
            res[phase] = f"failed: {type(e).__name__}: {e}"
            log(f"{phase}: FAILED: {e}")
    res["total_s"] = time.monotonic() - t0
    res["machine"]["load_at_end"] = load_avg()
    from bench import render, results

    md = (f"{table(res)}\n\nEvery measure, as the docs render them:\n\n"
          f"{render.table(results.measures(res))}\n\n{machine_text(res['machine'])} "
          f"Bench wall time {res['total_s'] / 60:.1f} min.\n")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "latest.json").write_text(json.dumps(res, indent=1, sort_keys=True,
                                                         default=str))
    (args.results / "latest.md").write_text(md)
    print(md)
    if not args.quick and set(phases) == set(PHASES):
        path = write_results(res, sys.argv if argv is None else ["bench.run", *argv])
        log(f"results file: {path} (commit it; `make docs` renders the tables from it)")
    return 0


def write_results(res: dict[str, Any], argv: list[str]) -> Path:
    """The committed, machine-readable record of a full run (bench/results.py)."""
    from bench import results

    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    doc = {
        "format": results.FORMAT,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": results.commit(),
        "command": "sudo make bench  # " + " ".join(["python", "-m", "bench.run", *argv[1:]]),
        "machine": res["machine"],
        "load": {"start": res["machine"]["load_at_start"], "end": res["machine"]["load_at_end"]},
        "total_s": round(res["total_s"], 1),
        "measures": results.measures(res),
        "raw": res,
    }
    results.RUNS.mkdir(parents=True, exist_ok=True)
    path = results.RUNS / f"{stamp}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
