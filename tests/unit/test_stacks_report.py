"""The report's and the Perfetto export's stack outputs (issue 23 part 5), from synthetic
traces with planted stacks (tests/unit/test_stacks_analysis.py)."""

from __future__ import annotations

import json
from typing import Any

from tests.builders import trace
from tests.unit.test_stacks_analysis import FUNCS, KINE, META, _rows
from tracer.analyzer import Analysis, analyze
from tracer.report.flame import icicle_nodes
from tracer.report.html import HtmlReport


def _a(**kw: Any) -> Analysis:
    return analyze(trace(meta=META, **_rows(**kw)), profile="k3s", end="exit:iptables")


def test_the_report_has_a_flame_graph_and_component_lanes() -> None:
    page = HtmlReport.from_analysis(_a()).render_bytes().decode()
    assert 'id="fig-flame"' in page and 'id="fig-component-lanes"' in page
    assert '<a href="#stacks">Stacks</a>' in page
    assert "stop after their first frame" in page  # the problems, plainly
    assert "kube-apiserver" in page


def test_without_stacks_the_page_has_no_stack_section() -> None:
    page = HtmlReport.from_analysis(_a(stacks=False)).render_bytes().decode()
    assert "fig-flame" not in page and 'href="#stacks"' not in page


def test_a_function_name_cannot_close_the_script(monkeypatch: Any) -> None:
    monkeypatch.setitem(FUNCS, KINE, "evil</script><script>alert(1)</script>.f")
    page = HtmlReport.from_analysis(_a()).render_bytes().decode()
    assert "evil" in page  # it is in the page, escaped
    assert "</script><script>alert(1)" not in page
    assert "<script>alert(1)" not in page


def test_icicle_values_are_subtree_sums() -> None:
    n = icicle_nodes([["p;a;b", 3], ["p;a;c", 2], ["p;d", 5]])
    val = dict(zip(n["ids"], n["values"]))
    par = dict(zip(n["ids"], n["parents"]))
    assert val["all"] == 10
    for i, p in par.items():
        if p:
            kids = [k for k, q in par.items() if q == i]
            assert val[i] >= sum(val[k] for k in kids)
    assert sorted(zip(n["labels"], n["values"]))[:3] == [("a", 5), ("all (10 samples)", 10),
                                                          ("b", 3)]


def test_the_perfetto_export_has_component_tracks_and_segment_components() -> None:
    from tracer.report.perfetto import COMPONENT_TID_BASE, PerfettoExport

    doc = json.loads(PerfettoExport.from_analysis(_a()).render_bytes())
    ev = doc["traceEvents"]
    lane = [e for e in ev if e["ph"] == "X" and e.get("cat") == "stacks"]
    assert lane and {e["tid"] for e in lane} == {COMPONENT_TID_BASE + 100}
    assert lane[0]["name"] == "kube-apiserver" and lane[0]["ts"] == 0
    segs = [e for e in ev if e.get("cat") == "critical_path"]
    assert any(e["args"].get("components_ns") == {"kube-apiserver": 240_000_000} for e in segs)
    plain = json.loads(PerfettoExport.from_analysis(_a(stacks=False)).render_bytes())
    assert not any(e.get("cat") == "stacks" for e in plain["traceEvents"])


def test_each_long_segment_has_its_own_flame_graph() -> None:
    a = _a()
    segs = a.sections["stacks"]["segments"]
    (run,) = [x for x in segs if a.critical_path[x["segment"]]["start_ns"] == 0]
    assert run["pid"] == 100 and dict(run["folded"]) == {
        "k3s[100];runtime.goexit;k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run": 12}
    # segments without samples in them have none
    for x in segs:
        s = a.critical_path[x["segment"]]
        assert sum(n for _, n in x["folded"]) > 0 and s.get("components")
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    assert "updatemenus" in page and "#0 run k3s[100]" in page
