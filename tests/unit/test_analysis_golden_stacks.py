"""The golden capture with scheduler states and stacks, pinned (issue 26, item 7).

tests/data/gok3s-start.trace: gok3s, the k3s-shaped Go stand-in (docs/gok3s.md; built by
Go 1.27, stripped), recorded by the default recorder (sched and stacks on) and cut to
its own process tree (tests/data/record_gok3s_golden.py says how). What `analyze --json`, the
HTML report's data and figures, and the Perfetto export say about it are pinned here: a change
to any of them shows up as a diff.

After an intended change, rewrite the pinned files and review the diff:
    K3SPROF_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/unit/test_analysis_golden_stacks.py

The pinned facts are also checked against gok3s's own truth log (gok3s-start.truth.jsonl,
written by the program on CLOCK_MONOTONIC as it ran), so the pin is not only self-agreement.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tracer.analyzer import Analysis, Options, load_and_analyze
from tracer.demo.gok3s_truth import read_truth
from tracer.report.html import HtmlReport
from tracer.report.perfetto import PerfettoExport

DATA = Path(__file__).resolve().parents[1] / "data"
TRACE = DATA / "gok3s-start.trace"
TRUTH = DATA / "gok3s-start.truth.jsonl"
END = "log:k3s is up and running"
PINNED = {
    "analysis": DATA / "gok3s-start.analysis.json",
    "report": DATA / "gok3s-start.report.json",
    "perfetto": DATA / "gok3s-start.perfetto.json",
}


def _analysis() -> Analysis:
    return load_and_analyze(TRACE, Options(end=END))


def _outputs(a: Analysis) -> dict[str, str]:
    data = a.to_json()
    data["trace"] = {**data["trace"], "path": "tests/data/gok3s-start.trace"}
    report = HtmlReport.from_analysis(a)
    # the report's data and each figure's markup (plotly's own script is the library's, not
    # ours: its size and hash only)
    figs = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in sorted(report.figures.items())}
    rep: dict[str, Any] = {"payload": report.payload, "figures_sha256": figs}
    perf = PerfettoExport.from_analysis(a).doc
    return {
        "analysis": json.dumps(data, indent=1, sort_keys=True) + "\n",
        "report": json.dumps(rep, indent=1, sort_keys=True, default=str) + "\n",
        "perfetto": json.dumps(perf, indent=1, sort_keys=True) + "\n",
    }


def test_the_outputs_are_pinned() -> None:
    out = _outputs(_analysis())
    if os.environ.get("K3SPROF_UPDATE_GOLDEN"):
        for name, path in PINNED.items():
            path.write_text(out[name])
    for name, path in PINNED.items():
        assert out[name] == path.read_text(), f"{name} differs from {path.name}"


def test_the_outputs_are_deterministic() -> None:
    assert _outputs(_analysis()) == _outputs(_analysis())


def test_the_pinned_facts_are_gok3s_s_own() -> None:
    """Independent of the analyzer: gok3s's truth log names the component that ran its CPU
    stretch, and the stretch's thread and times; the analysis must see the same."""
    truth = read_truth(TRUTH)
    a = _analysis()
    assert a.end_reached
    assert a.stacks is not None and a.stacks["cpu_samples"] > 0
    assert a.blockers is not None and a.state_lanes is not None
    stretch = truth.cpu[0]
    comps = {c["component"] for c in a.stacks["by_component"]}
    assert stretch.component in comps, (stretch, comps)
    # every fsync the program timed is a blocker row call of its pid
    rows = [r for r in a.blockers["fsync"] if r["pid"] == truth.pid]
    assert rows and rows[0]["calls"] == len(truth.fsyncs), (rows, truth.fsyncs)
