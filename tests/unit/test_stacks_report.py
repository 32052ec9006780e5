"""The report's and the Perfetto export's stack outputs (issue 23 part 5), from synthetic
traces with planted stacks (tests/unit/test_stacks_analysis.py)."""

from __future__ import annotations

from typing import Any

from tests.builders import trace
from tests.unit.test_stacks_analysis import FUNCS, KINE, META, _rows
from tracer.analyzer import Analysis, analyze
from tracer.report.flame import icicle_nodes
from tracer.report.html import HtmlReport


def _a(**kw: Any) -> Analysis:
    return analyze(trace(meta=META, **_rows(**kw)), profile="generic", end="exit:iptables")


def test_the_report_has_a_flame_graph_and_component_lanes() -> None:
    page = HtmlReport.from_analysis(_a()).render_bytes().decode()
    assert 'id="fig-flame"' in page and 'id="fig-component-lanes"' in page
    assert '<a href="#stacks">Stacks</a>' in page
    assert "one frame deep" in page  # the problems, plainly
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
