"""Many traces into a dataset: time per trace and speedup with 1, 2 and 4 local workers, and on
a loopback Dask cluster of two worker processes.

    flock /tmp/k3sprof-itest.lock .venv/bin/python bench/dataset.py [--traces 1000]
        [--workers 1,2,4] [--dask 2] [--rounds 1]

The traces are synthesised from a real recording (bench/synth.py: tests/data/etcd-start.trace
with its `sleep` made longer by a seeded random delay, so every copy is a different run). Each
measurement is one `k3sprof dataset DIR -o OUT` in a fresh process (interpreter start, imports,
discovery, analysis, Parquet write: what a user waits for), checked afterwards: OUT holds
exactly --traces runs. Results go to bench/results/dataset.json and a markdown table on stdout.
On a shared machine the speedup is bounded by the cores other work leaves free: the table
prints the load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import shifted_trace  # noqa: E402

K3SPROF = [sys.executable, "-m", "tracer"]
DASK = Path(sys.executable).parent / "dask"


def synthesise(root: Path, n: int, seed: int = 1) -> float:
    """n traces under root (seconds it took)."""
    rng = random.Random(seed)
    t = time.monotonic()
    for i in range(n):
        shifted_trace(root / f"{i:05d}" / "trace", rng.randrange(0, 2_000_000_000))
    return time.monotonic() - t


def _load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _cpu_of(pids: list[int]) -> float:
    """utime + stime (s) of running processes (the Dask workers: not our waited-for children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def one_run(traces: Path, out: Path, extra: list[str], n: int,
            workers: list[int] | None = None) -> dict[str, Any]:
    """One `dataset` in a fresh process: wall time, and the CPU time it (its pool, or the Dask
    workers) used: on a shared machine the CPU per trace is the figure the load does not move."""
    shutil.rmtree(out, ignore_errors=True)
    load = _load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wcpu = _cpu_of(workers or [])
    t = time.monotonic()
    p = subprocess.run([*K3SPROF, "dataset", str(traces), "-o", str(out), *extra],
                       capture_output=True, text=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wcpu = _cpu_of(workers or []) - wcpu
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime + wcpu
    if p.returncode != 0:
        raise SystemExit(f"dataset failed ({p.returncode}): {p.stderr.strip()}")
    q = subprocess.run([*K3SPROF, "query", str(out), "SELECT count(*) AS n FROM runs", "--json"],
                       capture_output=True, text=True, check=True)
    got = json.loads(q.stdout)["n"]
    if got != n:
        raise SystemExit(f"the dataset has {got} runs, not {n}")
    # worker_cpu_s: the Dask workers' share alone (0 for the local pool), so a check can tell
    # that the cluster, not the client, did the analyses
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 2), "worker_cpu_s": round(wcpu, 2),
            "load": load}


class LoopbackCluster:
    """`dask scheduler` plus N `dask worker` processes on 127.0.0.1."""

    def __init__(self, workers: int, tmp: Path) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        sched = tmp / "scheduler.json"
        self.procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched)], cwd=tmp, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not sched.exists():
            if time.monotonic() > deadline:
                self.close()
                raise SystemExit("the Dask scheduler did not start")
            time.sleep(0.2)
        time.sleep(0.2)
        self.address = str(json.loads(sched.read_text())["address"])
        for _ in range(workers):
            self.procs.append(subprocess.Popen(
                [str(DASK), "worker", self.address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(tmp)],
                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        from distributed import Client

        with Client(self.address, timeout="30s") as c:  # type: ignore[no-untyped-call]
            c.wait_for_workers(workers, timeout=60)

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def measure(traces: int = 1000, workers: tuple[int, ...] = (1, 2, 4), dask: int = 2,
            rounds: int = 1, command: str = "bench/dataset.py") -> dict[str, Any]:
    """Synthesise `traces` traces, time `k3sprof dataset` per configuration (module
    docstring): {traces, synthesis_s, cpus, date, rows: [{config, runs, wall_s, cpu_s,
    per_trace_ms, cpu_per_trace_ms, speedup}], command}."""
    with tempfile.TemporaryDirectory(prefix="k3sprof-dataset-bench-") as tmpname:
        tmp = Path(tmpname)
        synth_s = synthesise(tmp / "traces", traces)
        rows: list[dict[str, Any]] = []
        configs: list[tuple[str, list[str], list[int] | None]] = [
            (f"{w} local worker{'s' if w > 1 else ''}", ["--workers", str(w)], None)
            for w in workers
        ]
        cluster = LoopbackCluster(dask, tmp) if dask else None
        try:
            if cluster is not None:
                configs.append((f"Dask, {dask} workers on loopback",
                                ["--cluster", cluster.address],
                                [p.pid for p in cluster.procs[1:]]))
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
            # rounds interleave the configurations: a change in the machine's load falls on all
            for _ in range(rounds):
                for name, extra, wpids in configs:
                    runs[name].append(one_run(tmp / "traces", tmp / "out", extra, traces,
                                              wpids))
            for name, _, _ in configs:
                rows.append({"config": name, "runs": runs[name],
                             "wall_s": statistics.median(r["wall_s"] for r in runs[name]),
                             "cpu_s": statistics.median(r["cpu_s"] for r in runs[name])})
        finally:
            if cluster is not None:
                cluster.close()
    base = rows[0]["wall_s"]
    for r in rows:
        r["per_trace_ms"] = round(1000 * r["wall_s"] / traces, 2)
        r["cpu_per_trace_ms"] = round(1000 * r["cpu_s"] / traces, 2)
        r["speedup"] = round(base / r["wall_s"], 2)
    return {
        "traces": traces, "synthesis_s": round(synth_s, 1), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "rows": rows, "command": command,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=1000)
    ap.add_argument("--workers", default="1,2,4", help="local pool sizes, comma-separated")
    ap.add_argument("--dask", type=int, default=2, help="Dask workers (0: no Dask run)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dataset.json")
    args = ap.parse_args(argv)
    result = measure(args.traces, tuple(int(x) for x in args.workers.split(",")), args.dask,
                     args.rounds, " ".join(["bench/dataset.py",
                                            *(argv if argv is not None else sys.argv[1:])]))
    rows = result["rows"]
    synth_s = result["synthesis_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.traces} traces (synthesised in {synth_s:.1f} s), {os.cpu_count()} CPUs, "
          f"{result['date']}")
    print("| configuration | wall s, median (min-max, n) | wall per trace (ms) | speedup "
          "| CPU per trace (ms) | load before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        walls = [x["wall_s"] for x in r["runs"]]
        loads = ", ".join(f"{x['load']:.1f}" for x in r["runs"])
        print(f"| {r['config']} | {r['wall_s']:.1f} ({min(walls):.1f}-{max(walls):.1f}, "
              f"n={len(walls)}) | {r['per_trace_ms']:.1f} | {r['speedup']:.2f}x | "
              f"{r['cpu_per_trace_ms']:.1f} | {loads} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
