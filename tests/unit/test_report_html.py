"""The HTML report as bytes: self-contained, deterministic, escaped, redacted."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import plotly.offline
import pytest

from tests.builders import ms
from tests.unit.test_report_scenario import (
    EVIL,
    SECRETS,
    analysis,
    k3s_trace,
    socket_rows,
    t,
)
from tracer._errors import UsageError
from tracer.analyzer import analyze
from tracer.report import charts
from tracer.report.html import HtmlReport


def render(redact: bool = True, **meta: Any) -> str:
    a = analyze(k3s_trace(meta=meta), profile="k3s", redact=redact)
    return HtmlReport.from_analysis(a).render_bytes().decode()


def payload(page: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="k3sprof-data">(.*?)</script>', page, re.S)
    assert m, "payload script missing"
    data: dict[str, Any] = json.loads(m.group(1))
    return data


@pytest.fixture(scope="module")
def page() -> str:
    return render()


def test_same_trace_gives_the_same_bytes(page: str) -> None:
    assert render() == page


def test_plotly_is_inlined_exactly_once_and_nothing_is_fetched(page: str) -> None:
    js = plotly.offline.get_plotlyjs()
    assert page.count(js[:300]) == 1
    assert page.count(js[-300:]) == 1
    ours = page.replace(js, "")
    assert not re.search(r"<script[^>]+src=", ours)
    assert not re.search(r"<link[^>]+href=", ours)
    assert "cdn.plot.ly" not in ours


def test_three_figures_with_fixed_ids(page: str) -> None:
    for div in ("fig-timeline", "fig-connects", "fig-events"):
        assert page.count(f'<div id="{div}" class="plotly-graph-div"') == 1
    assert page.count("Plotly.newPlot(") == 3


def test_script_injection_in_a_process_name_is_escaped(page: str) -> None:
    assert EVIL not in page
    assert "<img" not in page.lower()
    # every </script> closes a script we opened: the process name did not end one early
    assert page.count("</script>") == page.count("<script")
    # ...and the name is still there for the reader: as an escaped timeline label
    m = re.search(r'Plotly.newPlot\(\s*"fig-timeline",\s*(\[.*?\]),\s*\{', page, re.S)
    assert m
    labels = {y for tr in json.loads(m.group(1)) for y in tr["y"]}
    assert f"{html.escape(EVIL)} [140]" in labels


def test_payload_json_is_escaped_and_sorted(page: str) -> None:
    m = re.search(r'id="k3sprof-data">(.*?)</script>', page, re.S)
    assert m
    raw = m.group(1)
    # (Jinja's |tojson also escapes the single quote: safe in any attribute, too)
    assert not set("<>&'") & set(raw)
    data = json.loads(raw)
    assert (
        json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("'", "\\u0027")
        == raw
    )


def test_secrets_from_argv_appear_nowhere(page: str) -> None:
    for secret in SECRETS:
        assert secret not in page
    assert "&lt;redacted&gt;" in page or "\\u003credacted\\u003e" in page


def test_no_redact_keeps_the_secrets() -> None:
    # the check above could fail: without redaction the secrets are really in the page
    page = render(redact=False)
    assert all(s in page for s in SECRETS)


def test_header_facts_and_warnings(page: str) -> None:
    data = payload(page)
    facts = dict(data["facts"])
    assert facts["host"] == "node-1" and facts["kernel"] == "6.18.0"
    assert any("CONFIG_MODULES" in w for w in data["warnings"])
    lossy = payload(render(lost_events=42))
    assert any("42 events were lost" in w for w in lossy["warnings"])


def test_tables_hold_the_analysis(page: str) -> None:
    tables = payload(page)["tables"]
    cp = tables["critical_path"]
    kinds = [r[0] for r in cp["rows"]][:5]
    assert kinds == ["run", "wait:module", "run", "run", "wait:poll-lag"]
    assert cp["rows"][4][5] == "13.8%"  # 550 ms of polling lag of 3990 ms
    waits = {(r[0], r[1]): r for r in tables["waits"]["rows"]}
    sock = waits[("listener", "unix:/run/k3s/containerd/containerd.sock")]
    assert sock[8] == "2" and sock[10] == "550.0 ms"
    assert [r[0] for r in tables["phases"]["rows"]][:2] == [
        "containerd start -> first API readiness check",
        "API server start -> ready",
    ]


def test_big_trace_is_sampled_and_says_so() -> None:
    rows = socket_rows()
    for i in range(3000):
        rows.append(
            dict(
                ts_ns=t(10 + i),
                kind="connect",
                pid=200,
                tid=200,
                comm="chatty",
                endpoint="127.0.0.1:9999",
                port=9999,
                outcome="refused",
                ret=-111,
                outcome_ns=t(10 + i) + 1000,
            )
        )
    from tests.builders import trace

    tr = trace("big", meta={"start_ns": t(0), "end_ns": t(5000)}, socket=rows)
    page = HtmlReport.from_analysis(analyze(tr)).render_bytes().decode()
    m = re.search(r'Plotly.newPlot\(\s*"fig-connects",\s*(\[.*?\]),\s*\{', page, re.S)
    assert m
    traces = json.loads(m.group(1))
    refused = next(x for x in traces if x["name"] == "refused")
    assert (
        len([y for y in refused["y"] if y == "127.0.0.1:9999"]) == charts.MAX_POINTS_PER_SERIES
    )
    assert "sampled: 2600 attempts" in page


def test_empty_trace_still_renders() -> None:
    from tests.builders import trace

    tr = trace("empty", meta={"start_ns": ms(1)})
    page = HtmlReport.from_analysis(analyze(tr, end="listen:1")).render_bytes().decode()
    assert "No processes in this trace." in page
    assert any("never reached" in w for w in payload(page)["warnings"])


def test_render_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.html"
    rep = HtmlReport.from_analysis(analysis())
    rep.render(out)
    assert out.read_bytes() == rep.render_bytes()
    with pytest.raises(UsageError, match="already exists"):
        rep.render(out)
    rep.render(out, force=True)


def test_the_analysis_renders_what_it_found() -> None:
    a = analyze(k3s_trace(), profile="k3s", redact=False)
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    data = payload(page)
    assert len(data["tables"]["critical_path"]["rows"]) == len(a.critical_path)
    assert data["analysis"]["total_ns"] == a.total_ns
    assert (
        sum(s["end_ns"] - s["start_ns"] for s in data["analysis"]["critical_path"]) == a.total_ns
    )
    assert {r[1] for r in data["tables"]["milestones"]["rows"]} >= {
        m["name"] for m in a.milestones
    }
    phase_rows = {r[0]: r for r in data["tables"]["phases"]["rows"]}
    for p in a.phases:
        assert p["name"] in phase_rows
        if p["duration_ns"] is None:
            assert phase_rows[p["name"]][3] == "–"


def test_long_critical_path_lists_what_matters() -> None:
    result = analysis()
    t0 = result.start_ns
    path = [
        dict(
            start_ns=t0 + i * ms(1),
            end_ns=t0 + (i + 1) * ms(1),
            kind="wait:child",
            label=f"helper {i}",
            pid=500 + i,
            comm="helper",
        )
        for i in range(100)
    ]
    path.append(
        dict(
            start_ns=t0 + ms(100),
            end_ns=t0 + ms(3990),
            kind="run",
            label="k3s-server",
            pid=100,
            comm="k3s-server",
        )
    )
    result.critical_path = path  # type: ignore[assignment]
    data = payload(HtmlReport.from_analysis(result).render_bytes().decode())
    table = data["tables"]["critical_path"]
    assert [r[1] for r in table["rows"]] == ["k3s-server"]
    assert table["note"].startswith("100 segments under 1% of the total each (100.0 ms, 2.5%")
    assert len(data["analysis"]["critical_path"]) == 101
