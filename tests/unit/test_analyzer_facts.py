"""Trace facts the analyzer derives: the k3s version (log line, exec path), shown in report and
compare."""

from __future__ import annotations

from typing import Any

from tests.builders import analyze_json, ms, trace
from tests.unit.test_analyzer import exec_, fork
from tracer.analyzer import analyze
from tracer.report import model
from tracer.report.compare import compare, render_text

START_LINE = 'time="2025-04-23T10:11:12Z" level=info msg="Starting k3s v1.32.4+k3s1 (6b330558)"'


def k3s(log: list[dict[str, Any]] | None = None, filename: str = "/usr/local/bin/k3s") -> Any:
    ex = exec_(1, 10, "k3s", "server")
    ex["filename"] = filename
    return trace(meta={"start_ns": 0, "end_ns": ms(100)}, process=[fork(0, 10, 1), ex],
                 log=log or [])


def test_version_from_the_starting_log_line() -> None:
    t = k3s(log=[dict(ts_ns=ms(5), source="stderr", level="info", message="Starting k3s "
                      "v1.32.4+k3s1 (6b330558)", raw=START_LINE, time_from="arrival")])
    facts = analyze_json(t)["trace"]
    assert (facts["k3s_version"], facts["k3s_commit"], facts["k3s_version_from"]) == (
        "v1.32.4+k3s1", "6b330558", "log")
    f = model.facts(analyze(t))
    assert f["k3s_version"] == "v1.32.4+k3s1 (6b330558)"


def test_version_from_an_exec_path_and_unknown_otherwise() -> None:
    facts = analyze_json(k3s(filename="/opt/k3s-v1.32.3-k3s1"))["trace"]
    assert (facts["k3s_version"], facts["k3s_version_from"]) == ("v1.32.3+k3s1", "exec")
    assert analyze_json(k3s())["trace"]["k3s_version"] is None


def test_compare_names_both_versions() -> None:
    a = analyze(k3s(filename="/opt/k3s-v1.32.3-k3s1"))
    b = analyze(k3s(filename="/opt/k3s-v1.32.4-k3s1"))
    text = render_text(compare(a, b, name_a="old", name_b="new"))
    assert "A = old  (k3s v1.32.3+k3s1)" in text and "B = new  (k3s v1.32.4+k3s1)" in text
