"""Analysis scale: time and peak memory of `k3sprof info / analyze / report` on 10k-1M events.

    .venv/bin/python -m bench.scale [--sizes 10000,100000,1000000]

The traces are synthetic but k3s-shaped, written with the recorder's own writer
(tracer.schema.StreamWriter, 65536-row batches like a long recording's flushes): a k3s
process starting daemons, short helpers (fork/exec/exit, iptables/modprobe/mount argv)
forked by them, and clients polling 60 endpoints (refused until the endpoint's listen, then
ok). Each command runs as a user runs it (a subprocess of the console entry point); peak RSS
is that child's ru_maxrss from wait4. A command the tree does not have yet (analyze lands
with issue 3) is reported as missing, not failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from bench import K3SPROF, TREE, load_avg, log

T0 = 10_000_000_000
SPAN = 60_000_000_000  # a 60 s start
N_ENDPOINTS = 60
BATCH = 65536
#: k3s's own endpoints (supervisor, apiserver, etcd, kubelet, kube-proxy, cloud-controller,
#: containerd streaming; the last two listens are the scheduler and controller-manager, so
#: the k3s profile's end milestone is reached near the end of the trace)
K3S_PORTS = np.array([6443, 2379, 2380, 6444, 10010, 10248, 10250, 10249, 10256, 10258,
                      10259, 10257])
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)

PROGS = ["iptables", "ip6tables", "modprobe", "mount", "nft", "ipset", "runc",
         "containerd-shim-runc-v2", "bridge", "host-local", "portmap", "loopback", "pause"]
DAEMONS = ["k3s-server", "containerd", "kubelet", "coredns", "flanneld"]


def _strs(pool: list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(pool, pa.string()).take(pa.array(idx))


def _argv_pool() -> pa.ListArray:
    argvs = [[p, "-w", "5", "-t", "nat", "-A", f"KUBE-SVC-{i:04d}", "-j", "ACCEPT"]
             for i, p in enumerate(PROGS * 8)]
    return pa.array(argvs, pa.list_(pa.string()))


def make_tables(events: int, seed: int = 7) -> dict[str, pa.Table]:
    """process + socket tables with `events` rows in total (3/8 process, 5/8 socket)."""
    from tracer import schema

    rng = np.random.default_rng(seed)
    n_proc = max(1, events * 3 // 8 // 3)
    n_daemon = len(DAEMONS)
    n_sock = events - 3 * n_proc - n_daemon * 2 - N_ENDPOINTS
    # daemons: fork + exec at the start, never exit (alive at trace end)
    dpid = np.arange(1001, 1001 + n_daemon, dtype=np.int32)
    dts = T0 + np.arange(n_daemon, dtype=np.uint64) * 50_000_000
    # helpers: forked by a daemon, exec, exit after 0.2-50 ms
    hpid = np.arange(5000, 5000 + n_proc, dtype=np.int32)
    start = np.sort(rng.integers(T0 + 300_000_000, T0 + SPAN, n_proc)).astype(np.uint64)
    life = rng.integers(200_000, 50_000_000, n_proc).astype(np.uint64)
    parent = dpid[rng.integers(0, n_daemon, n_proc)]
    prog = rng.integers(0, len(PROGS), n_proc)
    kinds = np.concatenate([np.repeat(["fork", "exec"], n_daemon),
                            np.tile(["fork", "exec", "exit"], n_proc)])
    ts = np.concatenate([np.stack([dts, dts + 1_000_000], 1).ravel(),
                         np.stack([start, start + 60_000, start + life], 1).ravel()])
    pid = np.concatenate([np.repeat(dpid, 2), np.repeat(hpid, 3)])
    ppid = np.concatenate([np.full(2 * n_daemon, 1000, np.int32), np.repeat(parent, 3)])
    comm_idx = np.concatenate([np.repeat(np.arange(n_daemon), 2),
                               n_daemon + np.repeat(prog, 3)])
    names = DAEMONS + PROGS
    is_exec = kinds == "exec"
    exe_names = np.array(["/usr/sbin/" + c for c in names], dtype=object)
    argv_pool = _argv_pool()
    argv_idx = np.concatenate([np.zeros(2 * n_daemon, np.int64), np.repeat(prog, 3)])
    argv = argv_pool.take(pa.array(argv_idx))
    n = len(ts)
    order = np.argsort(ts, kind="stable")
    proc = pa.table({
        "ts_ns": pa.array(ts[order], pa.uint64()),
        "kind": pa.array(kinds[order], pa.string()),
        "pid": pa.array(pid[order]), "tid": pa.array(pid[order]),
        "ppid": pa.array(ppid[order]),
        "comm": _strs(names, comm_idx[order]),
        "uid": pa.array(np.zeros(n, np.uint32)),
        "cgroup_id": pa.array(np.full(n, 4242, np.uint64)),
        "filename": pa.array(np.where(is_exec, exe_names[comm_idx], None)[order], pa.string()),
        "argv": argv.take(pa.array(order)),
        "argv_truncated": pa.array(np.zeros(n, bool)),
        "enter_ns": pa.nulls(n, pa.uint64()), "errno": pa.nulls(n, pa.int32()),
        "exit_code": pa.array(np.zeros(n, np.int32), mask=kinds[order] != "exit"),
        "exit_signal": pa.nulls(n, pa.int32()),
        "tag": pa.nulls(n, pa.string()),
    }).cast(schema.PROCESS)
    # sockets: listens (one per endpoint, spread over the start) + polling connects
    listen_at = T0 + (np.arange(1, N_ENDPOINTS + 1, dtype=np.uint64) * (SPAN // (N_ENDPOINTS + 1)))
    # listens in this order: k3s's first, other endpoints, the scheduler and controller-manager last
    port = np.concatenate([K3S_PORTS[:-2], 20000 + np.arange(N_ENDPOINTS - len(K3S_PORTS)),
                           K3S_PORTS[-2:]]).astype(np.int32)
    ep = rng.integers(0, N_ENDPOINTS, n_sock)
    cts = np.sort(rng.integers(T0, T0 + SPAN, n_sock)).astype(np.uint64)
    ok = cts >= listen_at[ep]
    client = dpid[rng.integers(0, n_daemon, n_sock)]
    s_ts = np.concatenate([listen_at, cts])
    s_kind = np.concatenate([np.full(N_ENDPOINTS, "listen"), np.full(n_sock, "connect")])
    s_pid = np.concatenate([np.full(N_ENDPOINTS, dpid[0], np.int32), client])
    s_port = np.concatenate([port, port[ep]])
    endpoints = [f"127.0.0.1:{p}" for p in port]
    s_ep_idx = np.concatenate([np.arange(N_ENDPOINTS), ep])
    s_ret = np.concatenate([np.zeros(N_ENDPOINTS, np.int64), np.full(n_sock, -115, np.int64)])
    outcome = np.concatenate([np.full(N_ENDPOINTS, None), np.where(ok, "ok", "refused")])
    m = len(s_ts)
    order = np.argsort(s_ts, kind="stable")
    sock = pa.table({
        "ts_ns": pa.array(s_ts[order], pa.uint64()),
        "kind": pa.array(s_kind[order], pa.string()),
        "pid": pa.array(s_pid[order]), "tid": pa.array(s_pid[order]),
        "comm": _strs(DAEMONS, (s_pid[order] - 1001)),
        "uid": pa.array(np.zeros(m, np.uint32)),
        "cgroup_id": pa.array(np.full(m, 4242, np.uint64)),
        "fd": pa.array(np.full(m, 7, np.int32)),
        "family": pa.array(np.full(m, "inet"), pa.string()),
        "addr": pa.array(np.full(m, "127.0.0.1"), pa.string()),
        "port": pa.array(s_port[order]),
        "endpoint": _strs(endpoints, s_ep_idx[order]),
        "ret": pa.array(s_ret[order]),
        "ret_ns": pa.array(s_ts[order] + 20_000, pa.uint64()),
        "tcp": pa.array(np.ones(m, bool)),
        "outcome": pa.array(outcome[order], pa.string()),
        "outcome_errno": pa.array(np.where(outcome[order] == "refused", 111, 0).astype(np.int32),
                                  mask=outcome[order] != "refused"),
        "outcome_ns": pa.array(s_ts[order] + 80_000, pa.uint64()),
    }).cast(schema.SOCKET)
    return {"process": proc, "socket": sock}


def write_trace(path: Path, events: int) -> int:
    from tracer import schema

    path.mkdir(mode=0o700)
    tables = make_tables(events)
    for name, t in tables.items():
        w = schema.StreamWriter(path / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        for batch in t.to_batches(BATCH):
            w.write(pa.Table.from_batches([batch]))
        w.close()
    schema.write_meta(path, {
        "schema_version": schema.SCHEMA_VERSION, "tracer_version": "bench", "start_ns": T0,
        "end_ns": T0 + SPAN, "complete": True, "hostname": "bench", "kernel": "synthetic",
        "lost_events": 0, "probes": {"process": "attached", "socket": "attached"},
        "probes_unavailable": {},
    })
    return sum(t.num_rows for t in tables.values())


def has_command(name: str) -> bool:
    p = subprocess.run([*K3SPROF, name, "--help"], capture_output=True, cwd=TREE)
    return p.returncode == 0


RSS_TAG = "K3SPROF_BENCH_MAXRSS_KB="


def timed(cmd: list[str]) -> dict[str, Any]:
    """Run a command; wall seconds, peak RSS (MiB), exit code.

    Linux keeps a process's peak RSS across exec, so a child forked from this (large) bench
    process would report at least the bench's size: the peak is taken by /usr/bin/time, a
    small process, when it is installed, else from wait4 with that caveat noted.
    """
    wrapped = Path("/usr/bin/time").exists()
    full = ["/usr/bin/time", "-f", RSS_TAG + "%M", *cmd] if wrapped else cmd
    t0 = time.monotonic()
    p = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=TREE)
    assert p.stderr is not None
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    rss_kb = float(ru.ru_maxrss)
    lines = err.strip().splitlines()
    if wrapped and lines and lines[-1].startswith(RSS_TAG):
        rss_kb = float(lines.pop()[len(RSS_TAG):])
    return {"wall_s": wall, "peak_rss_mb": rss_kb / 1024, "exit": p.returncode,
            "rss_from": "/usr/bin/time" if wrapped else "wait4 (includes the bench's own size)",
            "error": "\n".join(lines)[-300:] if p.returncode else None}


def measure(sizes: tuple[int, ...] = DEFAULT_SIZES) -> dict[str, Any]:
    log(f"scale: sizes {sizes}, load {load_avg()}")
    commands: dict[str, Callable[[Path, Path], list[str]]] = {
        "info": lambda t, o: [*K3SPROF, "info", str(t), "--json"],
        "analyze": lambda t, o: [*K3SPROF, "analyze", str(t), "--json"],
        "report": lambda t, o: [*K3SPROF, "report", str(t), "-o", str(o), "--force"],
    }
    present = {c: has_command(c) for c in commands}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        for size in sizes:
            trace = Path(tmpd) / f"scale-{size}.trace"
            t0 = time.monotonic()
            n = write_trace(trace, size)
            gen_s = time.monotonic() - t0
            row: dict[str, Any] = {"events": n, "generate_s": gen_s, "load": load_avg()}
            for name, cmd in commands.items():
                if not present[name]:
                    row[name] = None
                    continue
                out = Path(tmpd) / f"scale-{size}.html"
                r = timed(cmd(trace, out))
                if name == "report" and r["exit"] == 0 and out.exists():
                    r["output_mb"] = out.stat().st_size / 2**20
                row[name] = r
                log(f"  {n:>8} events {name:8} {r['wall_s']:.2f}s {r['peak_rss_mb']:.0f} MiB"
                    + (f" FAILED: {r['error']}" if r["exit"] else ""))
            rows.append(row)
    growth: dict[str, float | None] = {}
    for name in commands:
        ok = [r for r in rows if r.get(name) and r[name]["exit"] == 0]
        if len(ok) >= 2:
            a, b = ok[-2], ok[-1]
            # exponent k in time ~ events^k between the two largest traces (1.0 = linear);
            # at small sizes the fixed start-up cost (imports) dominates and hides the trend
            growth[name] = float(np.log(b[name]["wall_s"] / a[name]["wall_s"])
                                 / np.log(b["events"] / a["events"]))
        else:
            growth[name] = None
    return {"sizes": rows, "missing": [c for c, ok in present.items() if not ok],
            "growth_exponent": growth}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    args = ap.parse_args(argv)
    res = measure(tuple(int(s) for s in args.sizes.split(",")))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
