"""The Analysis of a small real recording, pinned: any change to what `analyze --json` says about
it shows up here as a diff (bump analysis_version when the shape changes; docs/analyze.md).

tests/data/etcd-start.trace: a real recording (tests/data/reduce_trace.py says how it was made)
of `etcdctl endpoint health` started 1.5 s before `etcd` listens: refused Go connects until the
listen, a listener wait, child waits, the critical path from the shell's exec to its exit.

After an intended change, rewrite the pinned file and review the diff:
    K3SPROF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/test_analysis_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tracer.analyzer import Analysis, Options, load_and_analyze
from tracer.report.html import HtmlReport
from tracer.report.perfetto import PerfettoExport
from tracer.report.text import render

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = DATA / "etcd-start.trace"
GOLDEN = DATA / "etcd-start.analysis.json"


def _pinned(a: Analysis) -> str:
    data = a.to_json()
    data["trace"] = {**data["trace"], "path": "tests/data/etcd-start.trace"}  # where it is read
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def test_the_analysis_json_is_pinned() -> None:
    text = _pinned(load_and_analyze(TRACE, Options()))
    if os.environ.get("K3SPROF_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_pinned_facts_are_the_recording_s() -> None:
    # independent of the analyzer: what the workload did (its script) and the recorder saw
    a = load_and_analyze(TRACE, Options())
    assert a.scope["mode"] == "tree" and a.scope["processes"] == 4
    (w,) = [w for w in a.waits if w["kind"] == "listener"]
    assert w["waiter"] is not None and w["waiter"]["comm"] == "etcdctl"
    assert w["target"] is not None and w["target"]["comm"] == "etcd"
    # etcdctl started 1.5 s (the script's sleep) before etcd: its first refused connect is
    # more than a second before the listen
    assert w["ready_ns"] is not None and w["first_attempt_ns"] is not None
    assert w["ready_ns"] - w["first_attempt_ns"] > 1_000_000_000
    assert sum(s["duration_ns"] for s in a.critical_path) == a.total_ns


def test_json_round_trip_and_every_reporter_reads_it() -> None:
    a = load_and_analyze(TRACE, Options())
    back = Analysis.from_json(json.loads(json.dumps(a.to_json())))
    assert back.to_json() == json.loads(json.dumps(a.to_json()))
    assert render(back) == render(a)
    assert b"k3sprof-data" in HtmlReport.from_analysis(a).render_bytes()
    assert json.loads(PerfettoExport.from_analysis(a).render_bytes())["traceEvents"]


def test_write_outputs_writes_what_each_command_prints(tmp_path: Path) -> None:
    from tracer.report.outputs import analysis_text, write_outputs

    a = load_and_analyze(TRACE, Options())
    write_outputs(
        a,
        json_path=tmp_path / "a.json",
        text_path=tmp_path / "a.txt",
        html_path=tmp_path / "r.html",
    )
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(json.dumps(a.to_json()))
    assert (tmp_path / "a.txt").read_text() == render(a)
    assert (tmp_path / "r.html").read_bytes() == HtmlReport.from_analysis(a).render_bytes()
    # a milestone that never happened: the text says so, like analyze does on stderr
    missed = load_and_analyze(TRACE, Options(end="listen:1"))
    assert analysis_text(missed).endswith("k3sprof: end milestone not reached (listen:1)\n")
