"""Module loads per modprobe, on tables shaped like a real Debian 6.1 recording (no root).

The shape is the one the VM kernel matrix records for real (tests/kernels): `modprobe
br_netfilter` makes one finit_module call per module of its dependency chain, llc, stp,
bridge, br_netfilter, each with the module_load it caused inside the call (the collector names
the syscall row after it and keeps the syscall's entry in enter_ns); a second modprobe of a
module already loaded gets EEXIST (-17) and loads nothing.
"""

from __future__ import annotations

from typing import Any

from tests.builders import analyze_json, ms, trace
from tests.unit.test_analyzer import exec_, exit_, fork, listen
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport
from tracer.report.text import render

CHAIN = [("llc", 12.0, 13.5), ("stp", 14.0, 14.75), ("bridge", 15.0, 31.25),
         ("br_netfilter", 32.0, 36.0)]


def _loads(pid: int, chain: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    rows = []
    for name, enter, done in chain:
        rows.append(dict(ts_ns=ms(done - 0.25), kind="load", name=name, pid=pid, tid=pid,
                         comm="modprobe"))
        rows.append(dict(ts_ns=ms(done), kind="finit_module", name=name, pid=pid, tid=pid,
                         comm="modprobe", ret=0, enter_ns=ms(enter)))
    return rows


def _trace() -> Any:
    return trace(
        meta={"start_ns": 0, "command_pid": 7},
        process=[fork(0, 7, 1), exec_(1, 7, "k3s", "server"),
                 fork(10, 8, 7), exec_(11, 8, "modprobe", "br_netfilter"), exit_(40, 8),
                 fork(50, 9, 7), exec_(51, 9, "modprobe", "overlay"), exit_(55, 9)],
        socket=[listen(95, 7, 10250), listen(96, 7, 10259), listen(100, 7, 10257)],
        module=[*_loads(8, CHAIN),
                dict(ts_ns=ms(53), kind="finit_module", name=None, pid=9, tid=9,
                     comm="modprobe", ret=-17, enter_ns=ms(52.5))],
    )


def test_each_modprobe_lists_its_modules_in_order_with_exact_durations() -> None:
    r = analyze_json(_trace())
    loaders = r["module_loads"]
    assert [e["pid"] for e in loaders] == [8, 9]
    first, second = loaders
    assert first["command"] == "modprobe br_netfilter"
    assert [(x["module"], x["duration_ns"]) for x in first["loads"]] == [
        (name, ms(done) - ms(enter)) for name, enter, done in CHAIN]
    assert first["total_ns"] == sum(ms(done) - ms(enter) for _, enter, done in CHAIN)
    # the already-loaded module: the call is kept (it cost 0.5 ms) but names nothing
    assert [(x["module"], x["ret"], x["duration_ns"]) for x in second["loads"]] == [
        (None, -17, ms(0.5))]


def test_wait_module_segment_names_the_modules_it_loaded() -> None:
    r = analyze_json(_trace())
    seg = next(s for s in r["critical_path"] if s["kind"] == "wait:module" and s["pid"] == 8)
    assert seg["label"] == "modprobe br_netfilter: loaded llc, stp, bridge, br_netfilter"


def test_text_and_report_show_the_loads() -> None:
    a = analyze(_trace())
    text = render(a)
    assert ("modprobe br_netfilter [pid 8]: llc 1.5 ms, stp 0.8 ms, bridge 16.2 ms, "
            "br_netfilter 4.0 ms  (total 22.5 ms)") in text
    assert "(not loaded: ret -17) 0.5 ms" in text
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    assert 'data-table="module_loads"' in page
    assert "br_netfilter" in page


def test_no_module_rows_no_section() -> None:
    tr = trace(meta={"start_ns": 0, "command_pid": 7},
               process=[fork(0, 7, 1), exec_(1, 7, "k3s", "server"), exit_(20, 7)])
    r = analyze_json(tr)
    assert "module_loads" not in r
    page = HtmlReport.from_analysis(analyze(tr)).render_bytes().decode()
    assert 'data-table="module_loads"' not in page
