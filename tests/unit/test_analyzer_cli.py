"""`k3sprof analyze` in-process and as a subprocess: output, JSON contract, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.builders import table
from tests.unit.test_analyzer import server_client
from tracer import schema
from tracer.cli import main

JSON_KEYS = {"start_ns", "end_ns", "total_ns", "end_reached", "critical_path", "waits",
             "milestones", "phases", "counts", "lost_events", "processes", "profile", "trace"}


def write_trace(d: Path, tr: schema.Trace) -> Path:
    d.mkdir()
    schema.write_meta(d, tr.meta)
    for name, t in tr.tables.items():
        w = schema.StreamWriter(d / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        w.write(t)
        w.close()
    return d


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "t", server_client())


def test_text_output(trace_dir: Path, capsys: Any) -> None:
    assert main(["analyze", str(trace_dir)]) == 0
    out = capsys.readouterr().out
    assert "Critical path: 610.0 ms" in out
    assert "wait:poll-lag" in out and "127.0.0.1:8080" in out
    assert "hunter2" not in out


def test_json_contract(trace_dir: Path, capsys: Any) -> None:
    assert main(["analyze", str(trace_dir), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) >= JSON_KEYS
    (w,) = [w for w in r["waits"] if w["kind"] == "listener"]
    assert {"kind", "endpoint", "waiter", "target", "first_attempt_ns", "ready_ns", "first_ok_ns",
            "attempts", "interval_ns", "lag_ns"} <= set(w)
    seg = r["critical_path"][0]
    assert {"start_ns", "end_ns", "kind", "label", "pid", "comm"} <= set(seg)
    assert "hunter2" not in json.dumps(r)


def test_no_redact_keeps_argv(trace_dir: Path, capsys: Any) -> None:
    assert main(["analyze", str(trace_dir), "--json", "--no-redact"]) == 0
    assert "hunter2" in capsys.readouterr().out


def test_lost_events_warning(tmp_path: Path, capsys: Any) -> None:
    tr = server_client()
    tr.meta["lost_events"] = 5
    d = write_trace(tmp_path / "lossy", tr)
    assert main(["analyze", str(d)]) == 0
    assert "WARNING: 5 events were lost" in capsys.readouterr().out


def test_end_not_reached_exit_6(trace_dir: Path, capsys: Any) -> None:
    assert main(["analyze", str(trace_dir), "--end", "listen:9999"]) == 6
    cap = capsys.readouterr()
    assert "END NOT REACHED" in cap.out
    assert "end milestone not reached (listen:9999)" in cap.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--end", "nope:1"], 2, "unknown condition"),
        (["--profile", "rke9"], 2, "unknown profile"),
    ],
)
def test_usage_errors(trace_dir: Path, capsys: Any, args: list[str], code: int,
                      message: str) -> None:
    assert main(["analyze", str(trace_dir), *args]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unreadable_traces_exit_3(tmp_path: Path, capsys: Any) -> None:
    assert main(["analyze", str(tmp_path / "missing")]) == 3
    assert "no such trace" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["analyze", str(tmp_path / "empty")]) == 3
    assert "not a k3sprof trace" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "meta.json").write_text('{"hello": 1}')
    assert main(["analyze", str(foreign)]) == 3
    assert "not k3sprof trace metadata" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "meta.json").write_text("{not json")
    assert main(["analyze", str(corrupt)]) == 3
    assert "corrupt metadata" in capsys.readouterr().err


def test_torn_table_is_analyzed_and_flagged(tmp_path: Path, capsys: Any) -> None:
    d = write_trace(tmp_path / "torn", server_client())
    p = d / "socket.arrows"
    p.write_bytes(p.read_bytes()[:-7])  # a recorder killed mid-flush
    assert main(["analyze", str(d), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert "socket" in r["trace"]["truncated_tables"]


def test_console_script_and_module(trace_dir: Path) -> None:
    exe = Path(sys.executable).with_name("k3sprof")
    for cmd in ([str(exe)], [sys.executable, "-m", "tracer"]):
        p = subprocess.run([*cmd, "analyze", str(trace_dir), "--end", "listen:1"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 6, p.stderr
        assert "END NOT REACHED" in p.stdout


def test_empty_table_trace(tmp_path: Path, capsys: Any) -> None:
    tr = schema.Trace(path=tmp_path, meta={"schema_version": schema.SCHEMA_VERSION,
                                           "tracer_version": "t", "start_ns": 0},
                      tables={"process": table("process", [])})
    d = write_trace(tmp_path / "blank", tr)
    assert main(["analyze", str(d)]) == 0  # generic: the trace end, nothing to attribute
    assert "Critical path" in capsys.readouterr().out
