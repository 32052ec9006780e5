"""Helpers for tests that record real workloads with the real recorder (root + BPF)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracer import schema

ROOT = Path(__file__).resolve().parents[2]
K3SPROF = [sys.executable, "-m", "tracer"]
WORKLOADS = Path(__file__).resolve().parent / "workloads"


def free_port() -> int:
    """A TCP port nobody listens on right now (and its neighbour is free too)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            try:
                with socket.socket() as s2:
                    s2.bind(("127.0.0.1", port + 1))
                return int(port)
            except OSError:
                continue
    raise RuntimeError("no free port pair")


def record(out: Path, cmd: list[str], *extra: str, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `k3sprof record -o OUT [extra] -- CMD` as a user would, return the process."""
    p = subprocess.run([*K3SPROF, "record", "-o", str(out), *extra, "--", *cmd],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"record failed ({p.returncode}): {p.stderr}")
    return p


def descendants(trace: schema.Trace, root_pid: int) -> set[int]:
    """Pids of root_pid and every process it forked (from the trace's fork rows)."""
    proc = trace.table("process")
    forks = proc.filter(pc.equal(proc["kind"], "fork"))
    children: dict[int, list[int]] = {}
    for parent, child in zip(forks["ppid"].to_pylist(), forks["pid"].to_pylist()):
        children.setdefault(parent, []).append(child)
    seen, todo = set(), [root_pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += children.get(p, [])
    return seen


def rows_of(trace: schema.Trace, table: str, pids: set[int], **eq: Any) -> list[dict[str, Any]]:
    t = trace.table(table)
    mask = pc.is_in(t["pid"], value_set=pa.array(sorted(pids), pa.int32()))
    for col, val in eq.items():
        mask = pc.and_(mask, pc.equal(t[col], val))
    return t.filter(mask).to_pylist()  # type: ignore[no-any-return]


def etcdctl_before_etcd(tmp_path: Path) -> tuple[list[str], int]:
    """A real Go pair: `etcdctl endpoint health` (gRPC, retrying) started 1.5 s BEFORE `etcd`
    listens on its port. Returns (command to record, client port); health.txt and etcd.log
    land in tmp_path; etcd is stopped when etcdctl is done."""
    port, peer = free_port(), free_port()
    data = tmp_path / "etcd"
    script = (
        f"ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:{port} --dial-timeout=8s "
        f"--command-timeout=10s endpoint health > {tmp_path}/health.txt 2>&1 & c=$!; "
        f"sleep 1.5; etcd --data-dir {data} --listen-client-urls http://127.0.0.1:{port} "
        f"--advertise-client-urls http://127.0.0.1:{port} "
        f"--listen-peer-urls http://127.0.0.1:{peer} "
        f"--initial-advertise-peer-urls http://127.0.0.1:{peer} "
        f"--initial-cluster default=http://127.0.0.1:{peer} > {tmp_path}/etcd.log 2>&1 & e=$!; "
        f"wait $c; rc=$?; kill $e; wait $e; exit $rc"
    )
    return ["/bin/sh", "-c", script], port


def record_in_unit_cgroup(out: Path) -> tuple[str, Path] | None:
    """Record a process moved, during the recording, into a new cgroup v2 directory named like
    a systemd unit (then exec'ing /bin/sleep 0.1). Returns (unit, cgroup dir), or None when no
    cgroup v2 hierarchy is mounted. The cgroup is always removed."""
    import os
    import uuid

    from tracer.collector import procfs

    mount = procfs.cgroup_v2_mount()
    if mount is None:
        return None
    unit = f"k3sprof-test-{uuid.uuid4().hex[:6]}.service"
    cg = mount[0] / unit
    script = (f"mkdir {cg} && sh -c 'echo $$ > {cg}/cgroup.procs && exec /bin/sleep 0.1'; "
              f"rmdir {cg}")
    try:
        record(out, ["/bin/sh", "-c", script])
    finally:
        if cg.exists():
            os.rmdir(cg)
    return unit, cg
