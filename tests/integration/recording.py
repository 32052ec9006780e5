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
