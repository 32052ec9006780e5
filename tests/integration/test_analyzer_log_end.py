"""Ending the analysis on a real daemon's ready log line (issue 13): etcd (Debian's, Go) is the
recorded command; its "ready to serve client requests" line comes from its own stderr, recorded
with etcd's pid (the command's). With the pid removed (a trace from before schema 1.2, or a
source that cannot say who wrote), the analyzer falls back to the command's tree. The end must
belong to etcd, and the path must hold up against an end on a process event of the same start
(etcd's client listen)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.builders import analyze_json
from tests.integration.recording import free_port, record
from tracer import schema

pytestmark = pytest.mark.bpf

READY = "log:ready to serve client requests"


def check_path(r: dict[str, Any]) -> None:
    segs = r["critical_path"]
    assert segs[0]["start_ns"] == r["start_ns"] and segs[-1]["end_ns"] == r["end_ns"]
    for a, b in itertools.pairwise(segs):
        assert a["end_ns"] == b["start_ns"]
    assert sum(s["duration_ns"] for s in segs) == r["total_ns"] == r["end_ns"] - r["start_ns"]
    for s in segs:
        assert s["pid"] not in (None, 0) or s["kind"] == "wait:unknown", s


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd (Debian etcd-server) not installed")
def test_etcd_ready_line_end_belongs_to_etcd(tmp_path: Path) -> None:
    port, peer = free_port(), free_port()
    out = tmp_path / "etcd.trace"
    record(out, ["etcd", "--data-dir", str(tmp_path / "data"),
                 "--listen-client-urls", f"http://127.0.0.1:{port}",
                 "--advertise-client-urls", f"http://127.0.0.1:{port}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
           "--until", READY, "--duration", "60")
    trace = schema.load(out)
    etcd_pid = trace.meta["command_pid"]
    logs = trace.table("log").to_pylist()
    ready = [r for r in logs if "ready to serve client requests" in (r["message"] or "")]
    assert ready and ready[0]["pid"] == etcd_pid  # etcd's stderr: the command's lines are its own
    # the pid-less case: the end must still belong to etcd (the command's tree)
    log = trace.tables["log"]
    trace.tables["log"] = log.set_column(log.schema.get_field_index("pid"), "pid",
                                         pa.nulls(log.num_rows, pa.int32()))

    by_log = analyze_json(trace, end=READY)
    by_listen = analyze_json(trace, end=f"listen:{port}")
    for r in (by_log, by_listen):
        assert r["end_reached"]
        check_path(r)
    end = next(m for m in by_log["milestones"] if m["name"] == "end")
    assert (end["pid"], end["comm"]) == (etcd_pid, "etcd")
    assert by_log["critical_path"][-1]["pid"] == etcd_pid
    # etcd says it is ready after it listens on its client port, never before
    assert by_log["end_ns"] >= by_listen["end_ns"]
    assert by_log["end_ns"] == ready[0]["ts_ns"]
