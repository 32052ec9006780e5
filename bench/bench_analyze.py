"""Analysis scale: generate a k3s-shaped trace of N events, time `analyze` and its peak memory.

    .venv/bin/python bench/bench_analyze.py [--events 1000000] [--keep DIR]

The trace is written to disk and analyzed in a fresh subprocess (load + analyze), so the peak
RSS is the analyzer's own. Shape: a few busy Go-like processes make most connects to a handful
of endpoints (as k3s does), thousands of short helpers (fork/exec/exit, threads), readiness
pollers on a fixed cadence, clients refused until their server listens, and ordinary traffic.
Goal (issue 3): 1,000,000 events in < 10 s and < 2 GB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracer import schema  # noqa: E402

MS = 1_000_000


def _table(name: str, cols: dict[str, object], n: int) -> pa.Table:
    sch = schema.TABLES[name]
    arrays = []
    for f in sch:
        v = cols.get(f.name)
        arrays.append(pa.nulls(n, f.type) if v is None else pa.array(v, type=f.type))
    return pa.Table.from_arrays(arrays, schema=sch)


def generate(n_events: int, seed: int = 1) -> dict[str, pa.Table]:
    rng = np.random.default_rng(seed)
    span = 120_000 * MS  # a two-minute startup
    t0 = 1_000 * MS
    n_helpers = n_events // 25  # fork + exec + exit each
    n_threads = n_events // 30
    n_sock = n_events - 3 * n_helpers - n_threads

    # --- processes: 8 long-lived daemons (pids 100..107), helpers forked by them ---
    daemons = np.arange(100, 108, dtype=np.int32)
    d_start = t0 + np.arange(8, dtype=np.int64) * 500 * MS
    h_pid = (1000 + np.arange(n_helpers) % 30000).astype(np.int32)  # pid reuse, as on a real box
    h_start = np.sort(rng.integers(t0 + 5000 * MS, t0 + span, n_helpers))
    # pids are reused round-robin: keep each helper short enough to be gone before reuse
    h_end = h_start + rng.integers(1 * MS, 40 * MS, n_helpers)
    h_parent = daemons[rng.integers(0, 8, n_helpers)]
    names = np.array(["modprobe", "iptables", "runc", "containerd-shim-runc-v2", "nft", "sh"])
    h_name = names[rng.integers(0, len(names), n_helpers)]

    ts = np.concatenate([d_start, d_start + 1, h_start, h_start + 200_000, h_end,
                         rng.integers(t0, t0 + span, n_threads)])
    kind = (["fork"] * 8 + ["exec"] * 8 + ["fork"] * n_helpers + ["exec"] * n_helpers
            + ["exit"] * n_helpers + ["thread"] * n_threads)
    t_pid = daemons[rng.integers(0, 8, n_threads)]
    pid = np.concatenate([daemons, daemons, h_pid, h_pid, h_pid, t_pid])
    ppid = np.concatenate([np.ones(8, np.int32), np.full(8, -1, np.int32), h_parent,
                           np.full(2 * n_helpers, -1, np.int32), t_pid])
    d_names = np.array(["k3s-server", "containerd", "etcd", "kubelet", "coredns", "flannel",
                        "pause", "k3s-agent"])
    comm = np.concatenate([d_names, d_names, h_name, h_name, h_name, d_names[t_pid - 100]])
    filename = np.concatenate([np.full(8, None), "/usr/bin/" + d_names.astype(object),
                               np.full(n_helpers, None), "/usr/sbin/" + h_name.astype(object),
                               np.full(n_helpers + n_threads, None)])
    argv = [None] * 8 + [[str(x), "--token", "K10secret"] for x in d_names] + [None] * n_helpers \
        + [[str(x), "-w"] for x in h_name] + [None] * (n_helpers + n_threads)
    order = np.argsort(ts, kind="stable")
    process = _table("process", {
        "ts_ns": ts[order], "kind": np.array(kind, object)[order], "pid": pid[order],
        "tid": pid[order], "ppid": np.where(ppid[order] < 0, None, ppid[order]).tolist(),
        "comm": comm[order], "filename": filename[order],
        "argv": [argv[i] for i in order.tolist()],
        "exit_code": np.where(np.array(kind, object)[order] == "exit", 0, None).tolist(),
    }, len(ts))

    # --- sockets ---
    ports = np.array([6443, 6444, 2379, 10250, 10257, 10259, 10248, 10010, 8080, 9000])
    n_listen = 40
    l_ts = t0 + np.sort(rng.integers(2000 * MS, 60_000 * MS, n_listen))
    l_port = np.concatenate([ports, 20000 + np.arange(n_listen - len(ports))])
    l_pid = daemons[rng.integers(0, 8, n_listen)]
    n_poll_loops, poll_len = 40, 60
    p_pid = daemons[np.arange(n_poll_loops) % 8]
    p_port = l_port[rng.integers(0, n_listen, n_poll_loops)]
    p_start = t0 + rng.integers(1000 * MS, 30_000 * MS, n_poll_loops)
    p_interval = rng.choice([500 * MS, 1000 * MS, 2000 * MS], n_poll_loops)
    p_ts = (p_start[:, None] + np.arange(poll_len)[None, :] * p_interval[:, None]
            + rng.integers(-MS, MS, (n_poll_loops, poll_len))).ravel()
    p_pid_r = np.repeat(p_pid, poll_len)
    p_port_r = np.repeat(p_port, poll_len)
    n_busy = n_sock - n_listen - len(p_ts) - n_helpers // 4
    # busy daemons: most connects, to few endpoints (k3s's goroutines share one process)
    b_pid = daemons[rng.integers(0, 8, n_busy)]
    b_port = l_port[rng.integers(0, 12, n_busy)]
    b_ts = rng.integers(t0, t0 + span, n_busy)
    # helpers: a connect each to a random endpoint (a few refused before its listen)
    hs = n_helpers // 4
    hs_i = rng.integers(0, n_helpers, hs)
    hs_pid, hs_ts = h_pid[hs_i], h_start[hs_i] + 300_000
    hs_port = l_port[rng.integers(0, n_listen, hs)]

    s_ts = np.concatenate([l_ts, p_ts, b_ts, hs_ts])
    s_pid = np.concatenate([l_pid, p_pid_r, b_pid, hs_pid])
    s_port = np.concatenate([l_port, p_port_r, b_port, hs_port])
    s_kind = np.array(["listen"] * n_listen + ["connect"] * (len(s_ts) - n_listen), object)
    listen_at = dict(zip(l_port.tolist(), l_ts.tolist()))
    ready = np.array([listen_at[p] for p in s_port.tolist()], np.int64)
    outcome = np.where(s_ts >= ready, "ok", "refused").astype(object)
    outcome[:n_listen] = None
    addr = np.where(s_kind == "listen", "0.0.0.0", "127.0.0.1").astype(object)
    endpoint = addr + ":" + s_port.astype(str).astype(object)
    order = np.argsort(s_ts, kind="stable")
    socket = _table("socket", {
        "ts_ns": s_ts[order], "kind": s_kind[order], "pid": s_pid[order], "tid": s_pid[order],
        "comm": d_names[np.clip(s_pid[order] - 100, 0, 7)], "family": np.full(len(s_ts), "inet"),
        "addr": addr[order], "port": s_port[order], "endpoint": endpoint[order],
        "ret": np.where(s_kind[order] == "listen", 0, -115).tolist(),
        "tcp": np.ones(len(s_ts), bool), "outcome": outcome[order],
        "outcome_ns": (s_ts[order] + 100_000),
    }, len(s_ts))
    return {"process": process, "socket": socket}


def write(d: Path, tables: dict[str, pa.Table]) -> int:
    d.mkdir(parents=True)
    start = min(int(t["ts_ns"][0].as_py()) for t in tables.values())
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "bench",
                          "start_ns": start - 1, "hostname": "bench", "lost_events": 0})
    for name, t in tables.items():
        w = schema.StreamWriter(d / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        for batch in t.to_batches(max_chunksize=65536):
            w.write(pa.Table.from_batches([batch]))
        w.close()
    return sum(t.num_rows for t in tables.values())


MEASURE = """
import json, sys, time
t0 = time.perf_counter()
from tracer.analyzer import Options, load_and_analyze
t1 = time.perf_counter()
r = load_and_analyze(sys.argv[1], Options())  # the one load -> analyze every caller uses
t2 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so this child would report at least
# the size of the bench process that generated the trace (~600 MB at 1M events)
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "analyze_s": t2 - t1, "total_s": t2 - t0,
                  "peak_rss_mb": hwm_kb / 1024,
                  "waits": r.counts["waits"], "processes": r.counts["processes"],
                  "segments": len(r.critical_path), "end_reached": r.end_reached}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the trace here and keep it")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or Path(tmp) / "trace"
        t = time.perf_counter()
        n = write(d, generate(a.events))
        gen_s = time.perf_counter() - t
        p = subprocess.run([sys.executable, "-c", MEASURE, str(d)], capture_output=True,
                           text=True, cwd=ROOT, check=True)
        res = json.loads(p.stdout)
    res.update(events=n, generate_s=round(gen_s, 2))
    for k in ("import_s", "analyze_s", "total_s", "peak_rss_mb"):
        res[k] = round(res[k], 2)
    print(json.dumps(res, indent=1))
    ok = res["total_s"] < 10 and res["peak_rss_mb"] < 2048
    print(f"{n:,} events: load+analyze {res['total_s']} s, peak RSS {res['peak_rss_mb']:.0f} MB "
          f"-> goal (< 10 s, < 2 GB) {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
