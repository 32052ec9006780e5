"""`k3sprof info` on traces written here (no root needed to read a trace one owns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builders import table
from tracer import schema
from tracer.cli import main


def test_info_reports_rows_lost_events_and_context_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "t"
    d.mkdir()
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "t",
                          "start_ns": 10, "end_ns": 2_000_000_010, "complete": True,
                          "lost_events": 3,
                          "context": {"k3s.service": {"problem": "journalctl exited 1: x"}}})
    w = schema.StreamWriter(d / "process.arrows", schema.PROCESS)
    w.write(table("process", [dict(ts_ns=11, kind="fork", pid=2, ppid=1, comm="sh")]))
    w.close()
    assert main(["info", str(d), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["tables"] == {"process": 1} and j["lost_events"] == 3
    assert j["duration_s"] == 2.0
    assert j["context_problems"] == {"k3s.service": {"problem": "journalctl exited 1: x"}}
    assert main(["info", str(d)]) == 0
    out = capsys.readouterr().out
    assert "lost      3 events" in out and "WARNING   context k3s.service" in out
