"""Top blockers (issue 15) on a real daemon against an independent witness: Debian's etcd,
run under `strace -f -e trace=fsync,fdatasync,sync_file_range` (ptrace, not BPF), started,
given ten `etcdctl put`s (each a WAL fdatasync) and stopped inside one `record --sched`. The
analysis' `blockers.fsync` row for etcd must count exactly the calls strace saw, per syscall."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.recording import free_port, record
from tracer import schema
from tracer.analyzer import analyze
from tracer.report.text import render

pytestmark = [
    pytest.mark.bpf,
    pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("etcdctl")
                            and shutil.which("strace")),
                       reason="etcd, etcdctl (Debian etcd-server/etcd-client) or strace missing"),
]

PUTS = 10


def test_etcd_fsync_totals_match_strace(tmp_path: Path) -> None:
    port, peer = free_port(), free_port()
    ctl = f"ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:{port} --dial-timeout=2s"
    script = (
        f"strace -f -qq -e trace=fsync,fdatasync,sync_file_range -o {tmp_path}/strace.txt "
        f"etcd --data-dir {tmp_path}/data --listen-client-urls http://127.0.0.1:{port} "
        f"--advertise-client-urls http://127.0.0.1:{port} "
        f"--listen-peer-urls http://127.0.0.1:{peer} "
        f"--initial-advertise-peer-urls http://127.0.0.1:{peer} "
        f"--initial-cluster default=http://127.0.0.1:{peer} > {tmp_path}/etcd.log 2>&1 & s=$!; "
        f"ok=0; for i in $(seq 1 150); do {ctl} endpoint health >/dev/null 2>&1 && ok=1 && break; "
        "sleep 0.1; done; "
        f"[ $ok = 1 ] && for i in $(seq 1 {PUTS}); do {ctl} put k$i v$i >/dev/null || ok=0; done; "
        # strace's child is etcd: stop etcd itself (a signal to strace would only detach it)
        "kill $(cat /proc/$s/task/$s/children); wait $s; [ $ok = 1 ]"
    )
    record(tmp_path / "trace", ["/bin/sh", "-c", script], timeout=180)
    trace = schema.load(tmp_path / "trace")
    assert trace.lost_events == 0
    a = analyze(trace)
    etcd = [p for p in a.processes if p["comm"] == "etcd"]
    assert len(etcd) == 1, [(p["pid"], p["comm"]) for p in a.processes]
    pid = etcd[0]["pid"]
    # the witness: one line per call (an unfinished call's "<... resumed>" line is not counted)
    lines = (tmp_path / "strace.txt").read_text().splitlines()
    seen: dict[str, int] = {}
    for line in lines:
        m = re.match(r"^\d+\s+(fsync|fdatasync|sync_file_range)\(", line)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
    assert seen.get("fdatasync", 0) >= PUTS, seen  # every put is a WAL fdatasync
    rows = {r["pid"]: r for r in a.sections["blockers"]["fsync"]}
    assert pid in rows, (rows, render(a))
    row = rows[pid]
    assert row["by_kind"] == seen, (row, seen)
    assert row["calls"] == sum(seen.values())
    assert 0 < row["max_ns"] <= row["total_ns"]
    assert f"etcd[{pid}]: " in render(a)
