"""The HTML report in a real browser (Debian's headless chromium), opened from file:// offline.

Checks: no JavaScript error, every figure rendered by plotly (SVG with drawn points), tables
built, the injected process name did not become an element, and the screenshot at 1366x900 is a
picture, not a blank page.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.unit.test_report_scenario import analysis
from tracer.report.html import HtmlReport

pytestmark = pytest.mark.browser

CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
]


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [*CHROMIUM, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "k3s.html"
    HtmlReport.from_analysis(analysis(redact=False)).render(path)
    return path


@pytest.fixture(scope="module")
def dom(report_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    p = chromium(tmp_path_factory.mktemp("dom"), report_file, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, p.stderr


def test_no_javascript_errors(dom: tuple[str, str]) -> None:
    _, stderr = dom
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console


def figure_markup(html: str, div_id: str) -> str:
    start = html.index(f'<div id="{div_id}"')
    nxt = html.find('<div id="fig-', start + 10)
    return html[start : nxt if nxt > 0 else len(html)]


@pytest.mark.parametrize(
    ("div_id", "min_points"),
    [
        ("fig-timeline", 7 + 6),  # 7 process bars + 6 critical-path segments
        ("fig-connects", 8 + 6),  # 8 connect attempts + 6 listens
        ("fig-events", 4 + 1 + 8),  # 4 milestones, 1 module load, 8 execs
    ],
)
def test_every_figure_is_rendered(dom: tuple[str, str], div_id: str, min_points: int) -> None:
    html, _ = dom
    fig = figure_markup(html, div_id)
    assert "js-plotly-plot" in fig[:300], "plotly did not take over the div"
    assert 'class="main-svg"' in fig
    # plotly draws a bar as <g class="point">, a marker as <path class="point ...">
    assert len(re.findall(r'class="point[ "]', fig)) >= min_points


def test_tables_and_header_are_built(dom: tuple[str, str]) -> None:
    html, _ = dom
    assert "<title>k3sprof report: k3s-start</title>" in html
    assert html.count("<table>") >= 5
    assert "module: kernel built without CONFIG_MODULES" in html  # the visible warning
    assert "containerd start " in html and "first API readiness check" in html  # a phase row


def test_whatif_panel_is_built(dom: tuple[str, str]) -> None:
    html, _ = dom
    panel = html[html.index('<section id="whatif">'):]
    panel = panel[:panel.index("</section>")]
    assert "<table>" in panel and "predicted gain" in panel
    assert "poll:unix:/run/k3s/containerd/containerd.sock=250ms" in panel  # a suggestion row


def test_injected_name_stays_text(dom: tuple[str, str]) -> None:
    html, _ = dom
    assert not re.search(r"<img[^>]*onerror", html, re.I)
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def png_rows(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the (filtered) scanlines of a non-interlaced 8-bit PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4, 0: 1, 4: 2}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    assert len(raw) == stride * height
    return width, height, [raw[i * stride : (i + 1) * stride] for i in range(height)]


def test_screenshot_is_not_blank(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    p = chromium(tmp_path, report_file, f"--screenshot={shot}", "--window-size=1366,900")
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    width, height, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1366, 900)
    # a blank page is a few distinct scanlines; text, tables and a chart are hundreds
    assert len(set(rows)) > 300
    assert len(set(b"".join(rows[::10]))) > 100  # many different byte values, not two colors


def test_blank_page_would_fail_the_check(tmp_path: Path) -> None:
    # the non-blank check above can fail: a white page gives few distinct scanlines
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    shot = tmp_path / "blank.png"
    chromium(tmp_path, blank, f"--screenshot={shot}", "--window-size=1366,900")
    _, _, rows = png_rows(shot.read_bytes())
    assert len(set(rows)) <= 300


def test_scheduler_figures_are_rendered(tmp_path: Path) -> None:
    """A report with scheduler data (record --sched): the busy-cores line and the segment-state
    bars are drawn by plotly, without a JavaScript error."""
    from tests.unit.test_schedpath import _with_sched
    from tracer.analyzer import analyze

    page = tmp_path / "sched.html"
    a = analyze(_with_sched(server_sleeps=True))
    HtmlReport.from_analysis(a).render(page)
    p = chromium(tmp_path, page, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if "Uncaught" in line or "Error" in line]
    assert not [line for line in console if "CONSOLE" in line or "Uncaught" in line], console
    busy = figure_markup(p.stdout, "fig-busy-cores")
    assert "js-plotly-plot" in busy[:300] and 'class="js-line"' in busy
    states = figure_markup(p.stdout, "fig-segment-states")
    assert "js-plotly-plot" in states[:300]
    # the whole path's bar plus the significant segments', at least the non-zero states each
    assert len(re.findall(r'class="point[ "]', states)) >= 3


def test_state_lanes_and_blockers_are_rendered(tmp_path: Path) -> None:
    """Issue 15: the per-process state lanes (a wakeup followed into another process: two
    lanes) and the top-blockers table render without a JavaScript error."""
    from tests.unit.test_wakewalk import _sched
    from tracer.analyzer import analyze

    page = tmp_path / "lanes.html"
    HtmlReport.from_analysis(analyze(_sched())).render(page)
    p = chromium(tmp_path, page, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if "Uncaught" in line or "Error" in line]
    assert not [line for line in console if "CONSOLE" in line or "Uncaught" in line], console
    lanes = figure_markup(p.stdout, "fig-state-lanes")
    assert "js-plotly-plot" in lanes[:300]
    assert len(re.findall(r'class="point[ "]', lanes)) >= 4
    assert "replier [20] → client [10]" in p.stdout  # the blockers table, filled by the page
