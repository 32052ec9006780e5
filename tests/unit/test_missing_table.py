"""A table the metadata says was recorded but whose file is gone is said, loudly, everywhere a
torn table is: info, analyze (text and JSON), the report's warnings (issue 13)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tracer import schema
from tracer.analyzer import Options, load_and_analyze
from tracer.cli import main
from tracer.report import model
from tracer.report.text import render

DATA = Path(__file__).resolve().parents[1] / "data" / "etcd-start.trace"


@pytest.fixture
def without_process(tmp_path: Path) -> Path:
    """The real etcd recording with process.arrows deleted (its meta says 24 rows)."""
    d = tmp_path / "etcd-start.trace"
    shutil.copytree(DATA, d)
    (d / "process.arrows").unlink()
    return d


def test_load_notes_the_missing_table_and_only_it(without_process: Path) -> None:
    assert schema.load(DATA).missing == {}
    missing = schema.load(without_process).missing
    assert list(missing) == ["process"]
    assert "process.arrows is missing" in missing["process"] and "24 rows" in missing["process"]


def test_analyze_and_report_warn(without_process: Path) -> None:
    a = load_and_analyze(without_process, Options(scope="all"))
    assert list(a.trace["missing_tables"]) == ["process"]
    assert "WARNING: table process: process.arrows is missing" in render(a)
    warnings = model.warnings(model.facts(a))
    assert any(w.startswith("Trace table missing") and "process" in w for w in warnings)
    # the complete trace has no such warning
    clean = load_and_analyze(DATA, Options())
    assert not any("table missing" in w for w in model.warnings(model.facts(clean)))


def test_info_warns(without_process: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(without_process)]) == 0
    assert "WARNING   process: process.arrows is missing" in capsys.readouterr().out
