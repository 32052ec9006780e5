"""Report and export of a 100k-event trace: size and time (goal: report < 10 MB, < 10 s).

    .venv/bin/python bench/bench_report.py [--events 100000] [--keep DIR]

The trace is synthetic but k3s-shaped: helper processes (fork/exec/exit), clients polling
endpoints (refused until a listen, then ok), listens, a few module loads. The analysis is the
real analyzer's (timed separately).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracer import schema
from tracer.report.html import HtmlReport
from tracer.report.perfetto import PerfettoExport

T0 = 10_000_000_000
SPAN = 60_000_000_000  # a 60 s startup


def _table(name: str, cols: dict[str, Any]) -> pa.Table:
    sch = schema.TABLES[name]
    n = len(next(iter(cols.values())))
    arrays = [
        pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in sch
    ]
    return pa.Table.from_arrays(arrays, schema=sch)


def make_trace(events: int, seed: int = 7) -> tuple[schema.Trace, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    n_proc = events // 5  # 3 rows each
    n_conn = events - 3 * n_proc - 200
    pids = np.arange(1000, 1000 + n_proc, dtype=np.int32)
    start = np.sort(rng.integers(T0, T0 + SPAN, n_proc)).astype(np.uint64)
    life = rng.integers(200_000, 50_000_000, n_proc).astype(np.uint64)
    progs = np.array(
        [
            "modprobe",
            "iptables",
            "ip6tables",
            "nft",
            "mount",
            "runc",
            "ipset",
            "containerd-shim-runc-v2",
            "bridge",
            "host-local",
            "portmap",
            "pause",
        ]
    )
    prog = progs[rng.integers(0, len(progs), n_proc)]
    kinds = np.repeat(np.array(["fork", "exec", "exit"])[None, :], n_proc, 0).ravel()
    ts = np.stack([start, start + 50_000, start + life], 1).ravel()
    pid3 = np.repeat(pids, 3)
    comm = np.repeat(prog, 3)
    argv = [
        [str(p), "-t", "nat", "-A", f"KUBE-SVC-{i:06d}", "--token", "s3cret"]
        for i, p in enumerate(prog)
    ]
    proc = _table(
        "process",
        {
            "ts_ns": ts,
            "kind": kinds,
            "pid": pid3,
            "tid": pid3,
            "ppid": np.full(3 * n_proc, 1),
            "comm": comm,
            "filename": [f"/usr/sbin/{c}" if k == "exec" else None for c, k in zip(comm, kinds)],
            "argv": [argv[i // 3] if i % 3 == 1 else None for i in range(3 * n_proc)],
            "exit_code": [0 if k == "exit" else None for k in kinds],
        },
    )
    ports = rng.integers(0, 60, n_conn)
    conn_ts = np.sort(rng.integers(T0, T0 + SPAN, n_conn)).astype(np.uint64)
    listen_at = {p: T0 + int(SPAN * (p + 1) / 61) for p in range(60)}
    outcome = ["ok" if t >= listen_at[int(p)] else "refused" for t, p in zip(conn_ts, ports)]
    endpoints = [f"127.0.0.1:{10000 + int(p)}" for p in ports]
    sock_conn = {
        "ts_ns": conn_ts,
        "kind": ["connect"] * n_conn,
        "pid": np.full(n_conn, 999),
        "tid": np.full(n_conn, 999),
        "comm": ["k3s-server"] * n_conn,
        "endpoint": endpoints,
        "port": 10000 + ports,
        "outcome": outcome,
        "outcome_ns": conn_ts + 100_000,
        "ret": np.full(n_conn, -115),
    }
    sock_listen = {
        "ts_ns": np.array([listen_at[p] for p in range(60)], np.uint64),
        "kind": ["listen"] * 60,
        "pid": np.full(60, 999),
        "tid": np.full(60, 999),
        "comm": ["k3s-server"] * 60,
        "endpoint": [f"127.0.0.1:{10000 + p}" for p in range(60)],
        "port": np.arange(10000, 10060),
        "ret": np.zeros(60),
    }
    sock = pa.concat_tables([_table("socket", sock_conn), _table("socket", sock_listen)])
    mod = _table(
        "module",
        {
            "ts_ns": np.arange(140, dtype=np.uint64) * 1000 + T0,
            "kind": ["load"] * 140,
            "name": [f"mod{i}" for i in range(140)],
            "pid": np.full(140, 1000),
            "comm": ["modprobe"] * 140,
        },
    )
    meta = {
        "schema_version": schema.SCHEMA_VERSION,
        "tracer_version": "bench",
        "start_ns": T0,
        "end_ns": T0 + SPAN,
        "hostname": "bench",
        "kernel": "6.18",
        "lost_events": 0,
    }
    trace = schema.Trace(
        path=Path("bench-100k"), meta=meta, tables={"process": proc, "socket": sock, "module": mod}
    )
    procs = [
        {
            "key": f"{p}@{s}",
            "pid": int(p),
            "comm": str(c),
            "exe": f"/usr/sbin/{c}",
            "argv": argv[i],
            "start_ns": int(s),
            "end_ns": int(s + lf),
            "component": str(c),
            "exit_code": 0,
        }
        for i, (p, s, lf, c) in enumerate(zip(pids, start, life, prog))
    ]
    procs.append(
        {
            "key": "999@0",
            "pid": 999,
            "comm": "k3s-server",
            "argv": ["k3s", "server"],
            "start_ns": T0,
            "end_ns": None,
            "component": "k3s",
        }
    )
    path = []
    t = T0
    for i in range(200):
        kind = "run" if i % 2 == 0 else "wait:listener"
        path.append(
            {
                "start_ns": t,
                "end_ns": t + SPAN // 200,
                "kind": kind,
                "label": f"127.0.0.1:{10000 + i % 60}",
                "pid": 999,
                "comm": "k3s-server",
            }
        )
        t += SPAN // 200
    waits = [
        {
            "kind": "listener",
            "endpoint": f"127.0.0.1:{10000 + p}",
            "waiter": {"pid": 999, "comm": "k3s-server"},
            "target": {"pid": 999, "comm": "k3s"},
            "first_attempt_ns": T0,
            "ready_ns": listen_at[p],
            "first_ok_ns": listen_at[p] + 1_000_000,
            "attempts": 10,
            "interval_ns": 1_000_000,
            "lag_ns": 1_000_000,
        }
        for p in range(60)
    ]
    result = {
        "start_ns": T0,
        "end_ns": T0 + SPAN,
        "total_ns": SPAN,
        "end_reached": True,
        "critical_path": path,
        "waits": waits,
        "milestones": [],
        "phases": [],
        "processes": procs,
        "counts": {},
        "lost_events": 0,
    }
    return trace, result


def write_trace(trace: schema.Trace, d: Path) -> Path:
    """The synthetic trace on disk, as the recorder writes one."""
    d.mkdir(parents=True, exist_ok=True)
    schema.write_meta(d, trace.meta)
    for name, t in trace.tables.items():
        w = schema.StreamWriter(d / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        w.write(t)
        w.close()
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--keep", type=Path, help="write the outputs into this directory")
    args = ap.parse_args()
    from tracer.analyzer import Options, load_and_analyze

    trace, _synthetic = make_trace(args.events)
    rows = sum(t.num_rows for t in trace.tables.values())
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    out.mkdir(parents=True, exist_ok=True)
    trace_dir = write_trace(trace, out / "trace")
    t = time.perf_counter()
    result = load_and_analyze(trace_dir, Options())  # the one load -> analyze every caller uses
    print(f"trace: {rows} events, {len(result.processes)} processes")
    print(f"analyze (real analyzer)     {time.perf_counter() - t:6.2f} s")
    t = time.perf_counter()
    HtmlReport.from_analysis(result).render(out / "report.html", force=True)
    report_s = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    PerfettoExport.from_analysis(result).render(out / "export.json", force=True)
    export_s = time.perf_counter() - t
    size = (out / "report.html").stat().st_size
    print(
        f"report  {report_s:6.2f} s  {size / 1e6:6.2f} MB  (peak RSS "
        f"{peak / 1e6:.0f} MB)  goal < 10 s, < 10 MB: "
        f"{'met' if report_s < 10 and size < 10e6 else 'MISSED'}"
    )
    print(f"export  {export_s:6.2f} s  {(out / 'export.json').stat().st_size / 1e6:6.2f} MB")
    print(f"outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
