"""What user stacks cost (docs/stacks.md, Cost): stacks on vs `--no-stacks`.

    sudo .venv/bin/python -m bench.stacks_overhead [--rounds 7] [--scale 2.0] [--sample-s 4]

1. The burst (bench/workload_burst.py) as the RECORDED command, so every one of its forks,
   connects, binds, listens and accepts is a target's and takes a user stack (the worst
   case: on a k3s node most events are k3s's own). Paired runs, stacks on and off, in
   alternating order; the burst times itself (first to last operation), so the recorder's
   start and stop are not counted. Goal: on/off within 1.02.
2. The same, in-kernel (and again with the burst outside the targets, a system-wide
   recording: what stacks cost every other process): every BPF program's run time
   (kernel.bpf_stats_enabled) summed over the recorded burst, stacks on vs off, read while
   the recorder still runs: the stack walks' own cost, free of the shared box's noise
   that the wall-time pairs above carry.
   Reported as the extra BPF seconds per burst and as a fraction of the burst's time.
3. Sampling: two CPU burners (one per core of this 2-core box) as the recorded command for
   --sample-s seconds; the sampler's own BPF time (kernel.bpf_stats_enabled, turned on for
   the measurement only) per second of wall time, as a fraction of one CPU. Goal: <= 1 % at
   49 Hz. The recorder's CPU for those seconds, stacks on minus stacks off (paired), is
   the collector's share (decoding samples, reading stacks and mappings).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import BENCH, K3SPROF, TREE, Recorder, cpu_seconds, load_avg, log, run_json, summary
from bench.overhead import burst_cmd
from bench.probe_cost import STATS_SYSCTL, prog_stats

SETTLE_S = 1.5
BURNER = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < {s}: pass\n"


def _burst_recorded(out: Path, scale: float, stacks: bool) -> dict[str, Any]:
    cmd = [*K3SPROF, "record", "-o", str(out), "--force",
           *([] if stacks else ["--no-stacks"]), "--", *burst_cmd(scale)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=TREE, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"record exited {p.returncode}: {p.stderr.strip()[-500:]}")
    lines = [ln for ln in (p.stdout + "\n" + p.stderr).splitlines() if ln.startswith("{")]
    burst: dict[str, Any] = json.loads(lines[-1])
    meta = json.loads((out / "meta.json").read_text())
    st = meta.get("stacks") or {}
    return {"elapsed_s": burst["elapsed_s"], "stacks": st.get("counts", {}),
            "stack_errors": st.get("errors", {}), "lost": meta.get("lost_events", 0)}


def burst(rounds: int, scale: float) -> dict[str, Any]:
    ratios: list[float] = []
    runs = []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        for r in range(rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            got = {on: _burst_recorded(Path(tmpd) / f"t{int(on)}", scale, on) for on in order}
            ratio = got[True]["elapsed_s"] / got[False]["elapsed_s"]
            ratios.append(ratio)
            runs.append({"round": r, "off_s": got[False]["elapsed_s"],
                         "on_s": got[True]["elapsed_s"], "ratio": ratio,
                         "event_stacks": got[True]["stacks"],
                         "stack_errors": got[True]["stack_errors"],
                         "lost": [got[False]["lost"], got[True]["lost"]], "load": load_avg()})
            log(f"  round {r}: off {got[False]['elapsed_s']:.3f}s on "
                f"{got[True]['elapsed_s']:.3f}s ratio {ratio:.3f} stacks "
                f"{got[True]['stacks']} load {load_avg()}")
    return {"rounds": rounds, "scale": scale, "ratio_on_off": summary(ratios), "runs": runs}


def _bpf_time_of_burst(out: Path, scale: float, stacks: bool) -> tuple[float, float, int]:
    """(BPF seconds of all the recorder's programs during the burst, burst seconds, event
    stacks taken), with the burst as the recorded command."""
    burst = " ".join(burst_cmd(scale))
    rec = subprocess.Popen([*K3SPROF, "record", "-o", str(out), "--force",
                            *([] if stacks else ["--no-stacks"]), "--", "sh", "-c",
                            f"sleep 1; {burst}; sleep 2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=TREE)
    assert rec.stdout is not None and rec.stderr is not None
    for line in rec.stderr:
        if "recording to" in line:
            break
    before = prog_stats(rec.pid)  # live, and the burst starts 1 s later
    res: dict[str, Any] = {}
    for line in rec.stdout:
        if line.startswith("{"):
            res = json.loads(line)
            break
    after = prog_stats(rec.pid)
    rec.communicate(timeout=120)
    if rec.returncode != 0:
        raise RuntimeError(f"record exited {rec.returncode}")
    ns = sum(a["run_time_ns"] - before.get(i, {}).get("run_time_ns", 0)
             for i, a in after.items())
    meta = json.loads((out / "meta.json").read_text())
    counts = (meta.get("stacks") or {}).get("counts", {})
    return ns / 1e9, float(res["elapsed_s"]), sum(counts.values()) - counts.get("cpu", 0)


def _bpf_time_outside(out: Path, scale: float, stacks: bool) -> tuple[float, float, int]:
    """The same with the burst OUTSIDE the targets (a system-wide recording, the burst run
    by us): what stacks cost the rest of the machine (a lookup per event, the sampler)."""
    rec = Recorder.start(out, *([] if stacks else ["--no-stacks"]))
    try:
        before = prog_stats(rec.proc.pid)
        res = run_json(burst_cmd(scale))
        after = prog_stats(rec.proc.pid)
    finally:
        rec.stop()
    ns = sum(a["run_time_ns"] - before.get(i, {}).get("run_time_ns", 0)
             for i, a in after.items())
    return ns / 1e9, float(res["elapsed_s"]), 0


GO_SRC = BENCH.parent / "tests" / "integration" / "workloads" / "gostacks"


def go_dials(reps: int, dials: int) -> dict[str, Any]:
    """Event stacks of a Go program (the frame-pointer walk of real Go stacks, ~10-20
    frames through net.Dial): N refused dials from tests/integration/workloads/gostacks,
    recorded with stacks on and off; the extra BPF time per connect."""
    import os
    import shutil

    per: list[float] = []
    frames: list[float] = []
    old = STATS_SYSCTL.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        exe = Path(tmpd) / "gostacks"
        env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local",
               "GOCACHE": str(Path(tmpd) / "cache"), "CGO_ENABLED": "0"}
        subprocess.run([shutil.which("go") or "go", "build", "-ldflags=-s -w", "-o", str(exe),
                        "."], cwd=GO_SRC, env=env, check=True, timeout=300)
        cmd = f"sleep 1; GOSTACKS_DIALS={dials} {exe} 0 1 {tmpd}/truth.json"
        try:
            STATS_SYSCTL.write_text("1")
            for i in range(reps):
                got = {}
                for on in (False, True):
                    got[on] = _bpf_time_of_cmd(Path(tmpd) / f"g{int(on)}", on, cmd)
                n = got[True][2]
                per.append((got[True][0] - got[False][0]) / n * 1e9 if n else float("nan"))
                from tracer import schema

                t = schema.load(Path(tmpd) / "g1")
                depth = [len(f) for f in t.table("stacks").column("frames").to_pylist()]
                frames.append(sum(depth) / len(depth) if depth else 0.0)
                log(f"  go {i}: {n} event stacks, {per[-1]:.0f} ns each extra, "
                    f"{frames[-1]:.1f} frames per distinct stack")
        finally:
            STATS_SYSCTL.write_text(old)
    return {"reps": reps, "dials": dials, "ns_per_event_stack": summary(per),
            "frames_per_stack": summary(frames)}


def _bpf_time_of_cmd(out: Path, stacks: bool, shell_cmd: str) -> tuple[float, float, int]:
    """(BPF seconds of all the recorder's programs while shell_cmd ran, 0, event stacks)."""
    rec = subprocess.Popen([*K3SPROF, "record", "-o", str(out), "--force",
                            *([] if stacks else ["--no-stacks"]), "--", "sh", "-c",
                            f"{shell_cmd}; echo DONE; sleep 2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=TREE)
    assert rec.stdout is not None and rec.stderr is not None
    for line in rec.stderr:
        if "recording to" in line:
            break
    before = prog_stats(rec.pid)
    for line in rec.stdout:
        if line.startswith("DONE"):
            break
    after = prog_stats(rec.pid)
    rec.communicate(timeout=120)
    ns = sum(a["run_time_ns"] - before.get(i, {}).get("run_time_ns", 0)
             for i, a in after.items())
    meta = json.loads((out / "meta.json").read_text())
    counts = (meta.get("stacks") or {}).get("counts", {})
    return ns / 1e9, 0.0, sum(counts.values()) - counts.get("cpu", 0)


def bpf_cost(reps: int, scale: float, outside: bool = False) -> dict[str, Any]:
    extra: list[float] = []
    frac: list[float] = []
    per_stack_ns: list[float] = []
    old = STATS_SYSCTL.read_text().strip()
    try:
        STATS_SYSCTL.write_text("1")
        with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
            for i in range(reps):
                run = _bpf_time_outside if outside else _bpf_time_of_burst
                off, off_s, _ = run(Path(tmpd) / "off", scale, False)
                on, on_s, n = run(Path(tmpd) / "on", scale, True)
                extra.append(on - off)
                frac.append((on - off) / off_s)
                per_stack_ns.append((on - off) / n * 1e9 if n else float("nan"))
                log(f"  bpf {i}: BPF {off * 1e3:.1f} ms off, {on * 1e3:.1f} ms on "
                    f"({n} event stacks, {per_stack_ns[-1]:.0f} ns each), burst "
                    f"{off_s:.3f}/{on_s:.3f} s")
    finally:
        STATS_SYSCTL.write_text(old)
    return {"reps": reps, "extra_bpf_s_per_burst": summary(extra),
            "extra_fraction_of_burst": summary(frac), "ns_per_event_stack": summary(per_stack_ns)}


def sampling(seconds: float, hz: int, reps: int) -> dict[str, Any]:
    fractions: list[float] = []
    collector: list[float] = []
    collector_off: list[float] = []
    samples: list[int] = []
    script = BURNER.format(s=seconds)
    cmd = ["sh", "-c", f"{sys.executable} -c '{script}' & {sys.executable} -c '{script}'; wait"]
    old = STATS_SYSCTL.read_text().strip()
    try:
        STATS_SYSCTL.write_text("1")
        with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
            for i in range(2 * reps):
                on = i % 2 == 0
                out = Path(tmpd) / f"s{i}"
                rec = subprocess.Popen([*K3SPROF, "record", "-o", str(out), "--force",
                                        "--sample-hz" if on else "--no-stacks",
                                        *([str(hz)] if on else []), "--", *cmd],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True, cwd=TREE)
                assert rec.stderr is not None
                for line in rec.stderr:
                    if "recording to" in line:
                        break
                # the recorder's one-time work after going live (imports, snapshots, the
                # first mappings and binary identities) is not the steady cost: settle
                time.sleep(SETTLE_S)
                t0 = time.monotonic()
                cpu0 = cpu_seconds(rec.pid)
                before = prog_stats(rec.pid)
                time.sleep(seconds - SETTLE_S - 0.5)
                after = prog_stats(rec.pid)
                cpu1 = cpu_seconds(rec.pid)
                wall = time.monotonic() - t0
                rec.communicate(timeout=120)
                if not on:
                    collector_off.append((cpu1 - cpu0) / wall)
                    log(f"  no stacks {i // 2}: recorder {100 * collector_off[-1]:.2f} %")
                    continue
                meta = json.loads((out / "meta.json").read_text())
                sampler = meta["programs"]["stacks__cpu_sample"]
                ns = after[sampler]["run_time_ns"] - before.get(sampler, {}).get(
                    "run_time_ns", 0)
                fractions.append(ns / 1e9 / wall)
                collector.append((cpu1 - cpu0) / wall)
                samples.append(int(meta["stacks"]["counts"].get("cpu", 0)))
                log(f"  sampling {i}: sampler {100 * fractions[-1]:.3f} % of a CPU, "
                    f"recorder {100 * collector[-1]:.2f} %, {samples[-1]} samples")
    finally:
        STATS_SYSCTL.write_text(old)
    return {"hz": hz, "seconds": seconds, "sampler_cpu_fraction": summary(fractions),
            "recorder_cpu_fraction": summary(collector),
            "recorder_cpu_fraction_no_stacks": summary(collector_off),
            "recorder_extra_fraction": summary([a - b for a, b in zip(collector, collector_off)]),
            "cpu_samples": summary(samples)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--sample-s", type=float, default=6.0)
    ap.add_argument("--sample-reps", type=int, default=3)
    ap.add_argument("--hz", type=int, default=49)
    ap.add_argument("--bpf-reps", type=int, default=3)
    ap.add_argument("--only", default="burst,bpf,bpf_outside,sampling,go")
    args = ap.parse_args(argv)
    log(f"stacks_overhead: {args.rounds} rounds, scale {args.scale}, load {load_avg()}")
    only = set(args.only.split(","))
    phases: dict[str, Callable[[], dict[str, Any]]] = {
              "burst": lambda: burst(args.rounds, args.scale),
              "bpf": lambda: bpf_cost(args.bpf_reps, args.scale),
              "bpf_outside": lambda: bpf_cost(args.bpf_reps, args.scale, outside=True),
              "sampling": lambda: sampling(args.sample_s, args.hz, args.sample_reps),
              "go": lambda: go_dials(args.bpf_reps, 2000)}
    res = {name: run() for name, run in phases.items() if name in only}
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "runs"}
                      for k, v in res.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
