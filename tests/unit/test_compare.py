"""compare: phases and critical-path composition of two runs, with deltas (both runs are the
real analyzer's answers for the k3s scenario: B is the same start twice as fast, without the
curl helper the critical path waited for in A)."""

from __future__ import annotations

import dataclasses
import json
import re

from tests.builders import ms
from tests.unit.test_report_scenario import SECRETS, analysis
from tracer.analyzer import Analysis
from tracer.report.compare import compare, render_html, render_json, render_text

PHASE = "containerd start -> first API readiness check"
CURL = "wait:child: curl -H Authorization: Bearer <redacted> https://127.0.0.1:6443/readyz"


def faster() -> Analysis:
    return analysis(scale=0.5, curl=False)


def test_phase_and_total_deltas() -> None:
    c = compare(analysis(), faster(), name_a="v1.32.3+k3s1", name_b="v1.32.4+k3s1")
    ph = {d["name"]: d for d in c["phases"]}
    first = ph[PHASE]
    # containerd exec at 900 ms, first 6443 check at 2000 ms; twice as fast in B
    assert (first["a_ns"], first["b_ns"], first["delta_ns"]) == (ms(1100), ms(550), -ms(550))
    assert first["delta_pct"] == -50.0
    # absent in both runs (no poll end on 6443 in the scenario): no delta is made up
    assert ph["API server start -> ready"]["delta_ns"] is None
    assert c["total"]["a_ns"] == ms(3990) and c["total"]["b_ns"] == ms(1995)
    assert c["total"]["delta_pct"] == -50.0


def test_composition_by_kind() -> None:
    c = compare(analysis(), faster())
    comp = {d["name"]: d for d in c["composition"]}
    assert comp["wait:poll-lag"]["a_ns"] == ms(750) and comp["wait:poll-lag"]["b_ns"] == ms(375)
    assert comp["wait:poll-lag"]["delta_pct"] == -50.0
    assert comp["wait:child"]["b_ns"] is None and comp["wait:child"]["delta_ns"] is None


def test_appeared_and_disappeared_items() -> None:
    c = compare(analysis(), faster())
    status = {i["item"]: i["status"] for i in c["critical_path_items"]}
    assert status[CURL] == "disappeared"
    assert status["wait:module: modprobe overlay"] == "both"
    back = compare(faster(), analysis())
    assert {i["item"]: i["status"] for i in back["critical_path_items"]}[CURL] == "appeared"


def test_item_names_ignore_pids() -> None:
    a, b = analysis(), analysis()
    a.critical_path[0]["label"] = "k3s-server [100]"
    b.critical_path[0]["label"] = "k3s-server [4242]"
    assert all(i["status"] == "both" for i in compare(a, b)["critical_path_items"])


def test_text_json_html_outputs() -> None:
    c = compare(analysis(), faster(), name_a="old", name_b="new")
    text = render_text(c)
    assert PHASE in text and "-50.0%" in text
    assert "disappeared" in text
    assert json.loads(render_json(c))["phases"][0]["delta_pct"] == -50.0
    page = render_html(c)
    assert page == render_html(compare(analysis(), faster(), name_a="old", name_b="new"))
    assert page.count("Plotly.newPlot(") == 2
    assert not re.search(r"<script[^>]+src=", page)


def test_names_are_escaped_and_secrets_stay_where_the_analysis_put_them() -> None:
    evil = "<script>alert(1)</script>"
    page = render_html(compare(analysis(), faster(), name_a=evil, name_b="b"))
    assert "<script>alert(1)" not in page
    assert all(s not in page for s in SECRETS)
    # compare does not redact again: an analysis made with --no-redact keeps its argv
    assert "s3cr3tJoinPass" in render_text(compare(analysis(redact=False), faster()))


def test_end_not_reached_warns() -> None:
    b = dataclasses.replace(analysis(), end_reached=False, critical_path=[], total_ns=None)
    text = render_text(compare(analysis(), b, name_b="broken"))
    assert "WARNING: broken: end milestone not reached" in text
