"""compare: phases and critical-path composition of two runs, with deltas."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.builders import ms
from tests.unit.test_report_scenario import SECRETS, analysis
from tracer.report.compare import compare, render_html, render_json, render_text


def faster() -> dict[str, Any]:
    """Run B: containerd→readiness phase 40% shorter, polling lag cut to 110 ms, and the modprobe
    helper gone from the critical path (its time folded into the first run segment)."""
    b = analysis(scale=0.2)
    b["phases"][0]["duration_ns"] = ms(660)  # 1100 ms -> 660 ms: -40%
    path = b["critical_path"]
    path[0]["end_ns"] = path[2]["end_ns"]
    del path[1:3]
    path[-1]["end_ns"] -= ms(440)  # the end milestone comes as much earlier as the lag shrank
    b["total_ns"] = sum(s["end_ns"] - s["start_ns"] for s in path)
    return b


def test_phase_and_total_deltas() -> None:
    c = compare(analysis(), faster(), name_a="v1.32.3+k3s1", name_b="v1.32.4+k3s1")
    ph = {d["name"]: d for d in c["phases"]}
    first = ph["containerd start → first API readiness check"]
    assert (first["a_ns"], first["b_ns"], first["delta_ns"]) == (ms(1100), ms(660), -ms(440))
    assert first["delta_pct"] == -40.0
    assert ph["API server start → ready"]["delta_pct"] == 0.0
    # total: 3990 ms -> 3990 - 440 (lag 550 -> 110) ms
    assert c["total"]["a_ns"] == ms(3990) and c["total"]["delta_ns"] == -ms(440)
    assert c["total"]["delta_pct"] == -11.0


def test_composition_by_kind() -> None:
    c = compare(analysis(), faster())
    comp = {d["name"]: d for d in c["composition"]}
    assert comp["wait:poll-lag"]["a_ns"] == ms(550) and comp["wait:poll-lag"]["b_ns"] == ms(110)
    assert comp["wait:poll-lag"]["delta_pct"] == -80.0
    assert comp["wait:child"]["b_ns"] is None and comp["wait:child"]["delta_ns"] is None


def test_appeared_and_disappeared_items() -> None:
    c = compare(analysis(), faster())
    status = {i["item"]: i["status"] for i in c["critical_path_items"]}
    assert status["wait:child: modprobe br_netfilter, overlay"] == "disappeared"
    assert status["wait:listener: unix:/run/k3s/containerd/containerd.sock"] == "both"
    back = compare(faster(), analysis())
    assert {i["item"]: i["status"] for i in back["critical_path_items"]}[
        "wait:child: modprobe br_netfilter, overlay"
    ] == "appeared"


def test_item_names_ignore_pids() -> None:
    a, b = analysis(), analysis()
    a["critical_path"][0]["label"] = "k3s-server [100]"
    b["critical_path"][0]["label"] = "k3s-server [4242]"
    assert all(i["status"] == "both" for i in compare(a, b)["critical_path_items"])


def test_text_json_html_outputs() -> None:
    c = compare(analysis(), faster(), name_a="old", name_b="new")
    text = render_text(c)
    assert "containerd start → first API readiness check" in text and "-40.0%" in text
    assert "disappeared" in text
    assert json.loads(render_json(c))["phases"][0]["delta_pct"] == -40.0
    page = render_html(c)
    assert page == render_html(compare(analysis(), faster(), name_a="old", name_b="new"))
    assert page.count("Plotly.newPlot(") == 2
    assert not re.search(r"<script[^>]+src=", page)


def test_names_are_escaped_and_labels_redacted() -> None:
    a = analysis(redact=False)
    a["critical_path"][1]["label"] = "k3s server --token=s3cr3tJoinPass"
    page = render_html(compare(a, faster(), name_a="<script>alert(1)</script>", name_b="b"))
    assert "<script>alert(1)" not in page
    assert all(s not in page for s in SECRETS)
    assert "s3cr3tJoinPass" in render_text(compare(a, faster(), redact=False))


def test_end_not_reached_warns() -> None:
    b = {**analysis(), "end_reached": False, "critical_path": [], "total_ns": None}
    text = render_text(compare(analysis(), b, name_b="broken"))
    assert "WARNING: broken: end milestone not reached" in text
