"""The analysis options (--profile, --start, --end, --scope, --no-redact) are one definition
(tracer/cli/_options.analysis) on every command that analyzes a trace; export and compare take
--start too, and it moves the analysis start to the moment the trace's own table says."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pyarrow.compute as pc
import pytest

from tracer import schema
from tracer.cli import cli, main

TRACE = Path(__file__).resolve().parents[1] / "data" / "etcd-start.trace"
GOLDEN = TRACE.parent / "etcd-start.analysis.json"
START = "listen:54167"  # etcd's second listen, 1.5 s into the recording
ANALYSIS_OPTIONS = ("profile", "start", "end", "scope", "no_redact")


def _listen_ns() -> int:
    """When the recorder saw the listen on port 54167 (the socket table, not the analyzer)."""
    st = schema.load(TRACE).table("socket")
    rows = st.filter(pc.and_(pc.equal(st["kind"], "listen"), pc.equal(st["port"], 54167)))
    return int(pc.min(rows["ts_ns"]).as_py())


def _params(name: str) -> dict[str, click.Parameter]:
    cmd = cli.get_command(click.Context(cli), name)  # the group imports commands lazily
    assert cmd is not None
    return {p.name: p for p in cmd.params if p.name is not None}


@pytest.mark.parametrize("name", ["analyze", "report", "export", "compare", "whatif", "dataset"])
def test_every_analyzing_command_has_the_same_analysis_options(name: str) -> None:
    mine, ref = _params(name), _params("analyze")
    for opt in ANALYSIS_OPTIONS:
        assert opt in mine, f"{name} has no --{opt.replace('_', '-')}"
        assert mine[opt].opts == ref[opt].opts
        if opt != "profile":  # compare says the profile applies to traces (not analyses)
            assert getattr(mine[opt], "help", None) == getattr(ref[opt], "help", None)


def test_stacks_takes_profile_start_end_only() -> None:
    assert {"profile", "start", "end"} <= set(_params("stacks"))
    assert not {"scope", "no_redact"} & set(_params("stacks"))


def test_export_start_moves_the_critical_path_start(tmp_path: Path) -> None:
    t0 = schema.load(TRACE).recorded.start_ns
    listen = _listen_ns()
    first = {}
    for what, extra in (("default", []), ("start", ["--start", START])):
        out = tmp_path / f"{what}.json"
        assert main(["export", str(TRACE), "-o", str(out), *extra]) == 0
        doc = json.loads(out.read_text())
        path = [e for e in doc["traceEvents"] if e["ph"] == "X" and e.get("cat") == "critical_path"]
        assert path, "no critical-path slices"
        first[what] = min(e["ts"] for e in path)
    assert first["start"] == pytest.approx((listen - t0) / 1000, abs=0.002)
    assert first["default"] < first["start"] - 1e6  # the default start is > 1 s earlier


def test_compare_start_moves_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    end_ns = json.loads(GOLDEN.read_text())["end_ns"]  # the recorded command's exit
    assert main(["compare", str(TRACE), str(TRACE), "--start", START, "--json",
                 "--workers", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["a_ns"] == out["total"]["b_ns"] == end_ns - _listen_ns()
