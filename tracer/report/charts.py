"""What every chart of the HTML report shares: colors, caps, the time axis, hover text, and the
page's layout, given to each drawn chart (``Chart``) in one place (``figures_html``).

Text inside figures is HTML-escaped (``esc``) before plotly sees it, because plotly's labels
understand a subset of HTML; times are seconds since the recording started, rounded to 1 us so
that the same analysis gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from tracer.report.page import empty_figure, esc, figure_html, layout

#: Caps that keep a big trace's report small and fast to open (what is left out is said).
MAX_TIMELINE_ROWS = 90

MAX_ENDPOINT_ROWS = 40

MAX_POINTS_PER_SERIES = 400

#: total points budget of the connects and execs charts, shared by their series
MAX_CONNECT_POINTS = 4000

MAX_EXEC_POINTS = 2500

MAX_EVENT_ROWS = 45

SEGMENT_COLORS = {
    "run": "#1f4e9c",
    "wait:listener": "#d62728",
    "wait:poll": "#ff7f0e",
    "wait:poll-lag": "#ff7f0e",
    "wait:child": "#9467bd",
    "wait:module": "#8c564b",
    "wait:wakeup": "#17becf",
    "wait:unknown": "#7f7f7f",
}

OUTCOME_COLORS = {
    "ok": "#2ca02c",
    "refused": "#d62728",
    "enoent": "#e377c2",
    "timeout": "#8c564b",
    "unreachable": "#9467bd",
    "reset": "#bcbd22",
    "error": "#7f7f7f",
    "closed": "#17becf",
    "pending": "#c7c7c7",
}

#: Scheduler states (record --sched), after Perfetto's / systrace's thread-state colours: running
#: green, runnable blue, uninterruptible (disk) sleep orange, sleeping light grey; "other" (the
#: recorder could not tell) a darker grey; "steal" (the guest had the thread on a CPU, the
#: hypervisor did not run it) a dark red, apart from every state the guest controls.
STATE_COLORS = {
    "cpu": "#2e8b3a",
    "runqueue": "#6d9ee0",
    "io": "#f08c00",
    "sleep": "#dddddd",
    "other": "#8c8c8c",
    "steal": "#b2182b",
}

STATE_NAMES = {
    "cpu": "running (on CPU)",
    "runqueue": "runnable (waiting for a CPU)",
    "io": "uninterruptible (disk I/O)",
    "sleep": "sleeping",
    "other": "unknown",
    "steal": "on CPU, not run (host steal)",
}

#: the segment-states chart lists segments of at least this share of the critical path
STATES_MIN_SHARE = 0.01

# Soft tones for components, so that the strong critical-path colors above stand out.
COMPONENT_PALETTE = (
    "#9ecae9",
    "#a1d99b",
    "#fdd0a2",
    "#cbc9e2",
    "#c7e9c0",
    "#fdae6b",
    "#bcbddc",
    "#9ebcda",
    "#d9d9d9",
    "#f4cae4",
)


def seconds(ts_ns: int | None, t0: int) -> float | None:
    """Trace ns -> seconds since the recording started, rounded to 1 µs (stable bytes)."""
    return None if ts_ns is None else round((ts_ns - t0) / 1e9, 6)

def dur_s(ns: int) -> float:
    return round(ns / 1e9, 6)

def wrap_argv(words: Sequence[str], width: int = 100, limit: int = 600) -> str:
    """An argv for a hover label: escaped, wrapped at word boundaries, bounded."""
    text = " ".join(words)
    if len(text) > limit:
        text = text[:limit] + " …"
    lines: list[str] = []
    line = ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return "<br>".join(esc(x) for x in lines)

def x_range(window: tuple[int, int], t0: int) -> list[float | None]:
    """The timeline's x range (seconds since recording started): the analysis window
    (model.analysis_window) plus a margin; the busy-cores chart shares it so the two line up."""
    lo, hi = window
    margin_ns = max((hi - lo) // 40, 1_000_000)
    return [seconds(lo - margin_ns, t0), seconds(hi + margin_ns, t0)]

@dataclass(frozen=True)
class Chart:
    """One chart as its module drew it, not yet laid out: `figures_html` gives every chart the
    page's layout and embeds it, so a chart module only says what is particular to its chart."""

    div_id: str
    #: None: nothing to draw, and `empty` says why
    fig: go.Figure | None = None
    empty: str = ""
    height: int = 0
    #: set: the chart is on the analysis window's time axis (the range of x_range), with this
    #: title: the timeline, the busy-cores chart and the lanes share it, so they line up
    window_title: str | None = None
    #: set: a y axis of one row per name (a process, an endpoint, ...), top to bottom in order
    rows: list[str] | None = None
    #: the rest of the chart's layout
    layout: dict[str, Any] = field(default_factory=dict)

def figures_html(
    sections: Mapping[str, Sequence[Chart]], window: tuple[int, int], t0: int
) -> dict[str, str]:
    """Section anchor -> the html of its charts, one after the other; `window`: the analysis
    window (model.analysis_window), `t0` the recording's start."""
    xrange = x_range(window, t0)
    return {anchor: "".join(_chart_html(c, xrange) for c in charts)
            for anchor, charts in sections.items()}

def _chart_html(c: Chart, xrange: list[float | None]) -> str:
    if c.fig is None:
        return empty_figure(c.div_id, c.empty)
    extra = dict(c.layout)
    if c.window_title is not None:
        extra["xaxis"] = {"title": {"text": c.window_title}, "zeroline": False, "range": xrange}
    if c.rows is not None:
        extra["yaxis"] = {
            "categoryorder": "array",
            "categoryarray": c.rows,
            "autorange": "reversed",
            "automargin": True,
            "tickfont": {"family": "monospace", "size": 10},
        }
    c.fig.update_layout(layout(c.height, **extra))
    return figure_html(c.fig, c.div_id)
