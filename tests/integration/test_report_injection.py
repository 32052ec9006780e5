"""Markup-breaking strings from a trace reach the HTML report as text, in a real browser.

Every string the report shows comes from the recorded system (process names, argv, endpoints,
log lines) and may be written by anyone who can start a process on the traced machine. Each
payload below, if the page ever let it become markup, RUNS a script that marks the document
(`data-pwned` on <html>) or makes an element: the test opens the page in headless chromium and
checks that nothing ran and that the strings are still shown to the reader, as text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.builders import ms, trace
from tests.integration.test_report_browser import chromium
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport

pytestmark = pytest.mark.browser

#: (where it goes, the payload): each tries a different way out of its context
PAYLOADS = {
    "comm": "</script><script>document.documentElement.dataset.pwned='comm'</script>",
    "argv": "\"><img src=x onerror=\"document.documentElement.dataset.pwned='argv'\">",
    "endpoint": "'><svg onload=\"document.documentElement.dataset.pwned='endpoint'\">",
    "log": "<img src=x onerror=document.documentElement.dataset.pwned='log'>",
}


def hostile_trace() -> object:
    comm, argv, endpoint, log = (PAYLOADS[k] for k in ("comm", "argv", "endpoint", "log"))
    return trace(
        meta={"command_pid": 10, "end_ns": ms(400)},
        process=[
            dict(ts_ns=ms(1), kind="exec", pid=10, tid=10, ppid=1, comm="sh",
                 filename="/bin/sh", argv=["sh", "-c", argv]),
            dict(ts_ns=ms(5), kind="fork", pid=11, tid=11, ppid=10, comm="sh"),
            dict(ts_ns=ms(6), kind="exec", pid=11, tid=11, ppid=10, comm=comm[:15],
                 filename=f"/tmp/{comm}", argv=[comm, argv]),
            dict(ts_ns=ms(300), kind="exit", pid=11, tid=11, ppid=10, comm=comm[:15],
                 exit_code=0),
            dict(ts_ns=ms(390), kind="exit", pid=10, tid=10, ppid=1, comm="sh", exit_code=0),
        ],
        socket=[
            dict(ts_ns=ms(20 + 10 * i), kind="connect", pid=10, tid=10, comm="sh",
                 family="unix", addr=endpoint, endpoint=f"unix:{endpoint}", ret=-2,
                 ret_ns=ms(20 + 10 * i), outcome="enoent", outcome_errno=2,
                 outcome_ns=ms(20 + 10 * i))
            for i in range(5)
        ] + [dict(ts_ns=ms(100), kind="listen", pid=11, tid=11, comm=comm[:15], family="unix",
                  addr=endpoint, endpoint=f"unix:{endpoint}", ret=0, ret_ns=ms(100))],
        log=[dict(ts_ns=ms(200), source="stdout", message=log, raw=log, pid=10,
                  time_from="arrival")],
    )


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("inject")
    page = d / "hostile.html"
    # the log line is the end milestone: its condition (the line's first 20 characters, no
    # regex specials among them) is shown in the milestones and the header
    a = analyze(hostile_trace(), end=f"log:{PAYLOADS['log'][:20]}",  # type: ignore[arg-type]
                redact=False)
    HtmlReport.from_analysis(a).render(page)
    p = chromium(d, page, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_no_injected_script_ran(dom: str) -> None:
    assert "data-pwned" not in dom
    assert not re.search(r"<(img|svg)\b[^>]*\bon(error|load)=", dom, re.I)


@pytest.mark.parametrize("where", ["comm", "argv", "endpoint", "log"])
def test_the_strings_are_shown_as_text(dom: str, where: str) -> None:
    # the reader still sees each string (escaped in the DOM: &lt; ... &gt;); a comm is 15
    # characters (the kernel's TASK_COMM_LEN), the log line is there as the end's condition
    text = {"comm": PAYLOADS["comm"][:15], "log": "log:" + PAYLOADS["log"][:20]}.get(
        where, PAYLOADS[where][:24])
    shown = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert shown in dom, where


def test_the_check_could_fail(tmp_path: Path) -> None:
    # a page that does let a payload become markup is caught by the same check
    page = tmp_path / "bad.html"
    page.write_text(f"<!DOCTYPE html><html><body>{PAYLOADS['log']}</body></html>")
    p = chromium(tmp_path, page, "--dump-dom")
    assert "data-pwned" in p.stdout
