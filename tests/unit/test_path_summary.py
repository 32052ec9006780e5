"""Path summary (issue 13): the critical path by executable and by component in JSON, text and
report; consecutive helper runs are one text line unless --all-segments."""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import exec_, exit_, fork, listen
from tests.unit.test_report_html import payload
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport
from tracer.report.text import render

N = 60


def helpers_daemon() -> Any:
    """A daemon (pid 10, the recorded command) runs N iptables one after the other (each 3 ms,
    1 ms of its own work between them), then a modprobe, then listens on 10250."""
    rows = [fork(0, 10, 1), exec_(1, 10, "daemon")]
    t = 10.0
    for i in range(N):
        pid = 100 + i
        rows += [fork(t, pid, 10), exec_(t + 0.1, pid, "iptables", "-A", f"R{i}"),
                 exit_(t + 3, pid, comm="iptables")]
        t += 4
    rows += [fork(t, 99, 10), exec_(t + 0.1, 99, "modprobe", "br_netfilter"),
             exit_(t + 5, 99, comm="modprobe")]
    return trace(meta={"start_ns": 0, "end_ns": ms(1000), "command_pid": 10},
                 process=rows, socket=[listen(t + 20, 10, 10250)])


def test_json_by_executable_and_component_sum_to_the_path() -> None:
    a = analyze(helpers_daemon(), end="listen:10250")
    ps = a.to_json()["path_summary"]
    ex = {r["name"]: r for r in ps["by_executable"]}
    assert ex["iptables"]["processes"] == N and ex["iptables"]["segments"] == N
    assert ex["iptables"]["total_ns"] == N * ms(3)  # fork -> exit, 3 ms each
    assert ex["modprobe"]["processes"] == 1 and ex["modprobe"]["total_ns"] == ms(5)
    for rows in ps.values():
        assert sum(r["total_ns"] for r in rows) == a.total_ns
    assert ps["by_executable"][0]["name"] == "iptables"  # the largest share first
    assert abs(ex["iptables"]["pct"] - 100 * N * 3 / (a.total_ns / 1e6)) < 0.01


def test_text_collapses_the_helper_run_and_all_segments_lists_it() -> None:
    a = analyze(helpers_daemon(), end="listen:10250")
    text = render(a)
    path = text.split("Critical path:")[1].split("composition:")[0]
    assert path.count("iptables") == 2  # one collapsed line: "iptables x60", "60 runs of"
    assert f"iptables x{N}" in path and f"{N} runs of iptables, 180.0 ms" in path
    assert "daemon[10] between them: 59.0 ms" in path
    assert "by executable: iptables x60 180.0 ms" in text
    full = render(a, all_segments=True).split("Critical path:")[1].split("composition:")[0]
    assert full.count("iptables") == 2 * N  # process and label columns of each segment
    assert len(a.critical_path) > 2 * N - 1  # the JSON keeps every segment


def test_no_path_no_summary() -> None:
    a = analyze(helpers_daemon(), end="listen:1")
    assert "path_summary" not in a.to_json()
    assert "by executable" not in render(a)


def test_report_tables() -> None:
    a = analyze(helpers_daemon(), end="listen:10250")
    tables = payload(HtmlReport.from_analysis(a).render_bytes().decode())["tables"]
    rows = {r[0]: r for r in tables["path_by_executable"]["rows"]}
    assert rows["iptables"][1:4] == [str(N), str(N), "180.0 ms"]
    assert tables["path_by_component"]["rows"]
