"""The many-runs comparison page in a real browser (Debian's headless chromium), from file://:
no JavaScript error, the differences and every run drawn by plotly, the metrics table built."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_report_browser import chromium, figure_markup
from tests.unit.test_runs_compare import planted_sets
from tracer.cli import main

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    a, b = planted_sets(tmp_path_factory.mktemp("planted"), seed=27)
    page = tmp_path_factory.mktemp("page") / "compare.html"
    assert main(["compare", str(a), str(b), "-o", str(page), "--workers", "1"]) == 0
    p = chromium(tmp_path_factory.mktemp("dom"), page, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    console = [x for x in p.stderr.splitlines() if "CONSOLE" in x or "Uncaught" in x]
    assert not [x for x in console if "Uncaught" in x or "Error" in x], console
    return p.stdout


@pytest.mark.parametrize(
    ("div_id", "min_points"),
    [
        ("fig-diffs", 5),  # one Δ marker per metric (5 metrics in the planted runs)
        ("fig-runs-phases", 10),  # total: 5 runs of A + 5 of B
        ("fig-runs-path", 20),  # path:run and path:wait:child, 10 runs each
        ("fig-runs-waits", 20),  # wait and lag on etcd's endpoint, 10 runs each
    ],
)
def test_every_figure_is_drawn(dom: str, div_id: str, min_points: int) -> None:
    fig = figure_markup(dom, div_id)
    assert "js-plotly-plot" in fig[:300], "plotly did not take over the div"
    assert len(re.findall(r'class="point[ "]', fig)) >= min_points


def test_table_and_headline(dom: str) -> None:
    assert "<table>" in dom and "95% interval" in dom
    assert re.search(r"total: A 2\.\d+ s → B 3\.\d+ s", dom)
    assert "significant" in dom
