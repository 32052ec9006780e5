"""Real etcd and containerd logs, captured through a pipe as `record -- CMD` does, parse.

Each daemon runs with a private data dir, free ports / private sockets, for about a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.integration.daemons import containerd_config
from tests.integration.recording import free_port
from tracer.context import logs


def _need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:  # a failure in CI (tests/conftest.py): the setup installs it
        pytest.skip(f"{binary} not installed (run: sudo make setup)")
    return path


def _capture(cmd: list[str], until: str, *, timeout: float = 20,
             cwd: Path | None = None) -> pa.Table:
    """Run cmd with stdout+stderr on one pipe through CommandOutputSource until a line
    containing `until` arrived, then SIGTERM it and return the rows."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    assert proc.stdout is not None
    src = logs.CommandOutputSource(proc.stdout, "stderr", None)
    src.start()
    parts: list[pa.Table] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            t = src.drain()
            if t is not None:
                parts.append(t)
                if any(until in m for m in t["message"].to_pylist()):
                    break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        src.stop()
        t = src.drain()
        if t is not None:
            parts.append(t)
    table = pa.concat_tables(parts) if parts else None
    assert table is not None, f"{cmd[0]} printed nothing"
    return table


@pytest.fixture
def etcd_args(tmp_path: Path) -> Iterator[list[str]]:
    client, peer = free_port(), free_port()
    yield [
        _need("etcd"), "--name", "k3sprof-test", "--data-dir", str(tmp_path / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"k3sprof-test=http://127.0.0.1:{peer}",
    ]


def test_real_etcd_zap_json_log(etcd_args: list[str]) -> None:
    # etcd 3.5 (what k3s embeds) logs zap JSON by default; 3.4 does with --logger=zap
    t = _capture([*etcd_args, "--logger=zap", "--log-outputs=stderr"], "serving client")
    rows = t.to_pylist()
    parsed = [logs.parse_line(r["raw"]) for r in rows]
    json_rows = [(r, p) for r, p in zip(rows, parsed) if p.format == "json"]
    assert len(json_rows) >= 10
    assert all(r["level"] in ("info", "warn", "error") for r, _ in json_rows)
    components = {r["component"] for r, _ in json_rows}
    assert {"embed", "etcdserver"} <= components
    serving = [r for r, _ in json_rows if r["message"].startswith("serving client")]
    assert serving and serving[0]["level"] == "info"
    # etcd's own stamp precedes our arrival stamp (same wall clock, ms resolution)
    offset = logs.realtime_offset_ns()
    for r, p in json_rows:
        assert p.realtime_ns is not None
        own = p.realtime_ns - offset
        assert own <= r["ts_ns"] + 1_000_000  # etcd truncates to the ms


def test_real_etcd_capnslog_log(etcd_args: list[str]) -> None:
    t = _capture(etcd_args, "ready to serve client requests")
    formats = [logs.parse_line(x).format for x in t["raw"].to_pylist()]
    assert formats.count("capnslog") >= 10
    ready = [r for r in t.to_pylist() if r["message"] == "ready to serve client requests"]
    assert ready and (ready[0]["level"], ready[0]["component"]) == ("info", "embed")
    assert "etcdmain" in set(t["component"].to_pylist())


@pytest.mark.root
def test_real_containerd_log(tmp_path: Path) -> None:
    # a private containerd: own root, state and sockets; nothing shared with the host's
    config = containerd_config(tmp_path)
    t = _capture([_need("containerd"), "--config", str(config)], "successfully booted")
    rows = t.to_pylist()
    fmts = [logs.parse_line(r["raw"]).format for r in rows]
    assert fmts.count("logrus") >= 10
    # every parsed level is one of logrus's (containerd may log "fatal" when our SIGTERM lands
    # while a plugin is still starting: a real level, correctly parsed)
    assert {r["level"] for r in rows} <= {"trace", "debug", "info", "warn", "error", "fatal",
                                          "panic", None}
    assert rows[0]["message"] == "starting containerd" and rows[0]["level"] == "info"
    plugin_rows = [r for r in rows if (r["component"] or "").startswith("io.containerd.")]
    assert any(r["component"] == "io.containerd.snapshotter.v1" for r in plugin_rows)
    assert any(r["level"] == "warn" for r in rows)
    serving = [r for r in rows if r["message"] == "serving..."]
    assert len(serving) == 2 and all(r["level"] == "info" for r in serving)
