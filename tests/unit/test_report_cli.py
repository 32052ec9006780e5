"""report / export / compare on the command line: outputs, naming, --force, --no-redact, errors.

Traces are written to disk in the real format and analyzed by the real analyzer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_report_scenario import SECRETS, analysis, k3s_trace
from tracer import schema
from tracer.cli import main


def write_trace(trace: schema.Trace, path: Path) -> Path:
    path.mkdir(parents=True)
    schema.write_meta(path, trace.meta)
    for name, table in trace.tables.items():
        w = schema.StreamWriter(path / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        w.write(table)
        w.close()
    return path


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    return write_trace(k3s_trace(), tmp_path / "k3s-start")


def test_report_default_name_and_no_clobber(
    trace_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(trace_dir)]) == 0
    out = tmp_path / "reports" / "k3s-start.html"
    page = out.read_text()
    assert "Plotly.newPlot(" in page and all(s not in page for s in SECRETS)
    assert "wrote reports/k3s-start.html" in capsys.readouterr().out
    assert main(["report", str(trace_dir)]) == 2
    assert "already exists (use --force to overwrite)" in capsys.readouterr().err
    assert main(["report", str(trace_dir), "--force"]) == 0
    assert out.read_text() == page  # same trace, same bytes


def test_report_no_redact(trace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "raw.html"
    assert main(["report", str(trace_dir), "-o", str(out), "--no-redact"]) == 0
    assert any(s in out.read_text() for s in SECRETS)


def test_report_missing_trace_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope"), "-o", str(tmp_path / "x.html")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("k3sprof: error:") and err.count("\n") == 1 and "no such trace" in err


def test_export_perfetto(trace_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "k3s.json"
    assert main(["export", str(trace_dir), "--format", "perfetto", "-o", str(out)]) == 0
    raw = out.read_text()
    doc = json.loads(raw)
    assert any(e["ph"] == "X" for e in doc["traceEvents"])
    assert all(s not in raw for s in SECRETS)
    assert main(["export", str(trace_dir), "-o", str(out)]) == 2


def test_export_unknown_format(
    trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(trace_dir), "--format", "pprof", "-o", str(tmp_path / "x")]) == 2
    assert "pprof" in capsys.readouterr().err


def test_compare_traces_and_json_files(
    trace_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "v1.32.3.json"
    stored.write_text(json.dumps(analysis().to_json()))
    html_out = tmp_path / "cmp.html"
    assert main(["compare", str(stored), str(trace_dir), "-o", str(html_out)]) == 0
    text = capsys.readouterr().out
    assert "A = v1.32.3" in text and "B = k3s-start" in text and "Phases" in text
    assert "Plotly.newPlot(" in html_out.read_text()
    assert main(["compare", str(stored), str(trace_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["a"]["name"] == "v1.32.3" and data["phases"]


def test_compare_rejects_a_foreign_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    assert main(["compare", str(bad), str(bad)]) == 3
    assert "not analyze --json output" in capsys.readouterr().err


def test_console_script_and_module_agree(trace_dir: Path, tmp_path: Path) -> None:
    # subprocess layer: the real entry point, a user mistake gives one line and exit 2
    existing = tmp_path / "exists.html"
    existing.write_text("x")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.run(
        [sys.executable, "-m", "tracer", "report", str(trace_dir), "-o", str(existing)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert p.returncode == 2 and p.stderr.strip().endswith(
        "already exists (use --force to overwrite)"
    )
    assert existing.read_text() == "x"
