"""The shareable HTML report: one self-contained, offline, deterministic file.

Layout: a small HTML shell (below), plotly.js inlined exactly once, three plotly figures rendered
with ``fig.to_html(full_html=False, include_plotlyjs=False)`` and fixed div ids, and one JSON
payload (sorted keys; ``<``, ``>``, ``&`` escaped) from which a few lines of JS build the fact
header, warnings and tables with ``textContent`` (never innerHTML), so no recorded string can
become markup. Text inside figures is HTML-escaped before plotly sees it, because plotly's labels
understand a subset of HTML.

Same trace + same analysis -> same bytes: no wall clock, no random ids, sorted keys, rounded
floats.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import plotly.graph_objects as go
import plotly.offline

from tracer import __version__
from tracer.analyzer.model import Analysis
from tracer.report import model
from tracer.report._output import write_output
from tracer.report.page import (
    CSS,
    JS,
    TableDict,
    empty_figure,
    esc,
    figure_html,
    layout,
    payload_json,
    section,
    table_box,
)

OUTPUT_SUFFIX = ".html"

#: Caps that keep a big trace's report small and fast to open (what is left out is said).
MAX_TIMELINE_ROWS = 90
MAX_ENDPOINT_ROWS = 40
MAX_POINTS_PER_SERIES = 400
#: total points budget of the connects and execs charts, shared by their series
MAX_CONNECT_POINTS = 4000
MAX_EXEC_POINTS = 2500
MAX_EVENT_ROWS = 45
MAX_TABLE_ROWS = 300
#: beyond this many critical-path segments, the table lists only those of >= 1% of the total
CRITICAL_PATH_ROWS = 40

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
#: recorder could not tell) a darker grey.
STATE_COLORS = {
    "cpu": "#2e8b3a",
    "runqueue": "#6d9ee0",
    "io": "#f08c00",
    "sleep": "#dddddd",
    "other": "#8c8c8c",
}
STATE_NAMES = {
    "cpu": "running (on CPU)",
    "runqueue": "runnable (waiting for a CPU)",
    "io": "uninterruptible (disk I/O)",
    "sleep": "sleeping",
    "other": "unknown",
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


class ReportPayload(TypedDict):
    title: str
    tracer_version: str
    headline: list[str]
    facts: list[list[str]]
    warnings: list[str]
    tables: dict[str, TableDict]
    analysis: dict[str, Any]


def _s(ts_ns: int | None, t0: int) -> float | None:
    """Trace ns -> seconds since the recording started, rounded to 1 µs (stable bytes)."""
    return None if ts_ns is None else round((ts_ns - t0) / 1e9, 6)


def _dur_s(ns: int) -> float:
    return round(ns / 1e9, 6)


def _wrap(words: Sequence[str], width: int = 100, limit: int = 600) -> str:
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


def _sample(indices: Sequence[int], limit: int) -> list[int]:
    """At most `limit` evenly spaced items, always keeping the first and the last."""
    n = len(indices)
    if n <= limit:
        return list(indices)
    step = (n - 1) / (limit - 1)
    return [indices[round(i * step)] for i in range(limit)]


def _series_limit(budget: int, n_series: int) -> int:
    """Points per series: the budget shared out, within [30, MAX_POINTS_PER_SERIES]."""
    return max(30, min(MAX_POINTS_PER_SERIES, budget // max(1, n_series)))


def _table(columns: list[str], align: str, rows: list[list[str]], what: str) -> TableDict:
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f"showing the first {MAX_TABLE_ROWS} of {len(rows)} {what}"
        rows = rows[:MAX_TABLE_ROWS]
    return TableDict(columns=columns, align=align, rows=rows, note=note)


def _pct(part: int, total: int) -> str:
    return f"{100 * part / total:.1f}%" if total > 0 else "–"


def _who(pid: int | None, comm: str) -> str:
    if pid is None and not comm:
        return "–"
    return f"{comm} [{pid}]" if pid is not None else comm


class HtmlReport:
    """The HTML report: build with from_analysis(), write with render()."""

    output_suffix = OUTPUT_SUFFIX

    def __init__(self, payload: ReportPayload, figures: list[tuple[str, str, str, str]]) -> None:
        self.payload = payload
        #: (anchor, title, help text, figure html) in page order
        self.figures = figures

    @classmethod
    def from_analysis(cls, a: Analysis) -> HtmlReport:
        """The report of one analysis (scoped and redacted as the analysis was)."""
        from tracer.analyzer import gc_paused

        with gc_paused():  # 100k+ rows of small objects that all live until the page is built
            return cls._from_analysis(a)

    @classmethod
    def _from_analysis(cls, a: Analysis) -> HtmlReport:
        f = model.facts(a)
        t0 = f["start_ns"]
        procs = model.processes(a)
        segs = model.segments(a)
        waits = model.waits(a)
        phases = model.phases(a)
        miles = model.milestones(a)
        v = a.views
        conns, lists, execs, mods = v.connects, v.listens, v.execs, v.module_loads

        payload = ReportPayload(
            title=f"k3sprof report: {f['name']}",
            tracer_version=__version__,
            headline=_headline(f, segs, waits),
            facts=_facts_rows(f),
            warnings=model.warnings(f),
            tables={
                "critical_path": _critical_path_table(segs, f),
                "composition": _composition_table(segs, f),
                "path_by_executable": _summary_table(a, "executable"),
                "path_by_component": _summary_table(a, "component"),
                "waits": _waits_table(waits, t0),
                "phases": _phases_table(phases, t0),
                "milestones": _milestones_table(miles, t0),
                **_module_loads_tables(a, t0),
                **_blockers_tables(a),
            },
            analysis={
                "critical_path": list(segs),
                "waits": list(waits),
                "phases": list(phases),
                "milestones": list(miles),
                "counts": a.counts,
                "start_ns": f["analysis_start_ns"],
                "end_ns": f["analysis_end_ns"],
                "total_ns": f["total_ns"],
                "end_reached": f["end_reached"],
                "recording_start_ns": t0,
            },
        )
        figures = [
            (
                "timeline",
                "Timeline",
                "Processes grouped by systemd unit or pod (bands; by component when the trace has "
                "no cgroup attribution), one row each, colored by component; "
                "rows outlined in red are on the critical path. The top row is the critical path "
                "itself: blue is a process running, other colors are waits. Hover for pid, argv, "
                "times. Drag to zoom, double-click to reset.",
                _timeline_figure(procs, segs, f, v.active_pids),
            ),
            (
                "connects",
                "Connect attempts per endpoint",
                "Every connect() by its real outcome (Go connects are non-blocking: the outcome is "
                "the TCP answer, not the syscall's EINPROGRESS). Black diamonds mark the moment "
                "the endpoint started listening; a thick orange bar is polling lag: the time "
                "between the listen and the client's first successful connect, lost to the "
                "client's retry interval.",
                _connects_figure(conns, lists, waits, t0),
            ),
            (
                "events",
                "Milestones, module loads and execs",
                "Milestones the analyzer found, kernel module loads, and every exec grouped by "
                "program (helpers such as modprobe and iptables show up here even when they live "
                "only a few milliseconds).",
                _events_figure(miles, mods, execs, t0),
            ),
        ]
        busy = model.busy_cores(a)
        lanes = a.sections.get("state_lanes")
        if busy is not None or any("states" in s for s in segs):
            # scheduler data (record --sched) only: without it the page stays byte-identical
            figures.append(
                (
                    "sched",
                    "Scheduler: busy cores and critical-path states",
                    "Top: how many cores the whole machine kept busy, per "
                    f"{(busy['bucket_ns'] if busy else 10_000_000) / 1e6:g} ms, on the "
                    "timeline's time axis. Then one lane per process on the critical path (the "
                    "longest on it first): its dominant state per bucket over the same axis. "
                    "Then what each critical-path segment of at least "
                    f"{100 * STATES_MIN_SHARE:g}% of the path was doing (a run, a wakeup or a "
                    "helper: its own process; a poll or listener wait: its target). All in "
                    "Perfetto's thread-state colours: green running, blue runnable, orange disk "
                    "I/O, light grey sleeping, dark grey unknown. The first bar is the whole "
                    "path. Last: the top blockers (fsync calls, wakeups by another process).",
                    _busy_cores_figure(busy, f)
                    + _state_lanes_figure(lanes, f)
                    + _segment_states_figure(segs, f)
                    + ("<br>" + table_box("blockers") if a.sections.get("blockers") else ""),
                )
            )
        if a.sections.get("stacks"):  # stack tables (schema 1.3) only: else the page is unchanged
            from tracer.report import flame

            st = a.sections["stacks"]
            figures.append(("stacks", "Stacks: flame graph and components", flame.HELP,
                            flame.problems_html(st) + flame.flame_figure(st)
                            + flame.lanes_figure(st, t0, lambda fig, *x, **k:
                                                 _window_figure(fig, f, *x, **k))))
        return cls(payload, figures)

    def render_bytes(self) -> bytes:
        return _page(self.payload, self.figures).encode("utf-8")

    def render(self, path: Path, *, force: bool = False) -> None:
        write_output(path, self.render_bytes(), force)


# ----------------------------------------------------------------------------- text parts


def _headline(
    f: model.Facts, segs: list[model.SegmentRow], waits: list[model.WaitRow]
) -> list[str]:
    out = []
    if not f["end_reached"] or not segs:
        out.append(
            f"Recorded {model.fmt_ns(f['duration_ns'])}; the end milestone was not reached, "
            "so there is no critical path."
        )
    else:
        total = f["total_ns"] or sum(s["end_ns"] - s["start_ns"] for s in segs)
        comp = model.composition(segs)
        waited = sum(v for k, v in comp.items() if k != "run")
        out.append(
            f"Startup took {model.fmt_ns(total)} on the critical path "
            f"(+{(f['analysis_start_ns'] - f['start_ns']) / 1e9:.3f} s → "
            f"+{(f['analysis_end_ns'] - f['start_ns']) / 1e9:.3f} s since recording started): "
            f"{_pct(waited, total)} of it waiting, {_pct(comp.get('run', 0), total)} running."
        )
        top = sorted(
            (s for s in segs if s["kind"] != "run"),
            key=lambda s: (s["start_ns"] - s["end_ns"], s["start_ns"]),
        )[:3]
        for s in top:
            d = s["end_ns"] - s["start_ns"]
            out.append(
                f"{model.fmt_ns(d)} ({_pct(d, total)}) {s['kind']}: {s['label'] or s['comm']}"
            )
    lags = [w for w in waits if w["lag_ns"] and w["in_window"]]
    if lags:
        lost = sum(w["lag_ns"] or 0 for w in lags)
        out.append(
            f"Polling lag: {len(lags)} wait(s) lost {model.fmt_ns(lost)} in total between an "
            "endpoint becoming ready and its client noticing."
        )
    return out


def _facts_rows(f: model.Facts) -> list[list[str]]:
    rows = [
        ["trace", f["name"]],
        ["host", f["hostname"] or "unknown"],
        ["kernel", f["kernel"] or "unknown"],
        ["k3s version", f["k3s_version"] or "unknown (not seen in the trace)"],
        ["recorded", model.fmt_ns(f["duration_ns"])],
        ["command", f["command"] or "– (system-wide)"],
        ["profile", f["profile"] or "–"],
        ["scope", f["scope"]],
        ["lost events", str(f["lost_events"])],
        [
            "probes unavailable",
            "; ".join(f["probes_unavailable"]) if f["probes_unavailable"] else "none",
        ],
    ]
    return rows


def _critical_path_table(segs: list[model.SegmentRow], f: model.Facts) -> TableDict:
    total = f["total_ns"] or sum(s["end_ns"] - s["start_ns"] for s in segs)
    shown = segs
    note = ""
    if len(segs) > CRITICAL_PATH_ROWS:
        # a path of hundreds of tiny helper waits: list what matters, count the rest
        floor = total / 100
        shown = [s for s in segs if s["end_ns"] - s["start_ns"] >= floor]
        rest = [s for s in segs if s["end_ns"] - s["start_ns"] < floor]
        rest_ns = sum(s["end_ns"] - s["start_ns"] for s in rest)
        note = (
            f"{len(rest)} segments under 1% of the total each ({model.fmt_ns(rest_ns)}, "
            f"{_pct(rest_ns, total)} together) are not listed; the timeline and the JSON "
            "data in this page have them all"
        )
    rows = [
        [
            s["kind"],
            s["label"],
            _who(s["pid"], s["comm"]),
            model.fmt_t(s["start_ns"], f["start_ns"]),
            model.fmt_ns(s["end_ns"] - s["start_ns"]),
            _pct(s["end_ns"] - s["start_ns"], total),
        ]
        for s in shown
    ]
    if any("states" in s for s in shown):
        # scheduler data (record --sched): what each run (or a wait's target) was doing
        for row, s in zip(rows, shown):
            row.append(_states_cell(s))
        table = _table(
            ["kind", "what", "process", "start", "duration", "% of total", "scheduler states"],
            "lllrrrl", rows, "segments",
        )
    else:
        table = _table(
            ["kind", "what", "process", "start", "duration", "% of total"], "lllrrr", rows,
            "segments",
        )
    if note:
        table["note"] = note
    return table


def _states_cell(s: model.SegmentRow) -> str:
    """"cpu 41% · runqueue 12% · sleep 47%" (states of >= 0.5 %), prefixed by the target's
    name for a wait segment."""
    st = s.get("states")
    if not st:
        return ""
    dur = max(s["end_ns"] - s["start_ns"], 1)
    parts = " · ".join(f"{k} {100 * v / dur:.0f}%" for k, v in st.items() if 200 * v >= dur)
    return parts if s["kind"] == "run" else f"{s.get('states_of', '?')}: {parts}"


def _composition_table(segs: list[model.SegmentRow], f: model.Facts) -> TableDict:
    comp = model.composition(segs)
    total = f["total_ns"] or sum(comp.values())
    order = [k for k in model.SEGMENT_KINDS if k in comp] + sorted(
        k for k in comp if k not in model.SEGMENT_KINDS
    )
    rows = [[k, model.fmt_ns(comp[k]), _pct(comp[k], total)] for k in order]
    return _table(["kind", "time on the critical path", "% of total"], "lrr", rows, "kinds")


def _module_loads_tables(a: Analysis, t0: int) -> dict[str, TableDict]:
    """Per loader (modprobe), each module it loaded, in order, with the load's duration; no
    table at all when the trace has no module loads (most kernels record none at all)."""
    loaders = a.sections.get("module_loads") or []
    rows = [
        [
            f"{e['command'][:80]} [{e['pid']}]",
            x["module"] or f"(not loaded: ret {x['ret']})",
            f"{(x['end_ns'] - t0) / 1e6:,.1f} ms",
            model.fmt_ns(x["duration_ns"]),
        ]
        for e in loaders
        for x in e["loads"]
    ]
    if not rows:
        return {}
    return {
        "module_loads": _table(
            ["loaded by", "module", "done at", "load took"], "llrr", rows, "module loads"
        )
    }


def _summary_table(a: Analysis, what: str) -> TableDict:
    rows = model.path_summary(a, what)
    return _table(
        [what, "processes", "segments", "time on the critical path", "% of total"],
        "lrrrr",
        [
            [r["name"], str(r["processes"]), str(r["segments"]), model.fmt_ns(r["total_ns"]),
             f"{r['pct']:.1f}%"]
            for r in rows
        ],
        f"{what}s",
    )


def _waits_table(waits: list[model.WaitRow], t0: int) -> TableDict:
    def key(w: model.WaitRow) -> tuple[bool, int, int]:
        # waits outside the analysis window (e.g. teardown retries after the end) come last
        span = model.wait_span(w)
        return (
            not w["in_window"],
            -(span[1] - span[0]) if span else 0,
            w["first_attempt_ns"] or 0,
        )

    rows = []
    for w in sorted(waits, key=key):
        span = model.wait_span(w)
        rows.append(
            [
                w["kind"] if w["in_window"] else f"{w['kind']} (outside the analysis window)",
                w["endpoint"] or "–",
                _who(w["waiter_pid"], w["waiter_comm"]),
                _who(w["target_pid"], w["target_comm"]),
                model.fmt_t(w["first_attempt_ns"], t0),
                model.fmt_t(w["ready_ns"], t0),
                model.fmt_t(w["first_ok_ns"], t0),
                model.fmt_ns(span[1] - span[0]) if span else "–",
                "–" if w["attempts"] is None else str(w["attempts"]),
                model.fmt_ns(w["interval_ns"]),
                model.fmt_ns(w["lag_ns"]),
            ]
        )
    return _table(
        [
            "kind",
            "endpoint",
            "waiter",
            "target",
            "first attempt",
            "ready",
            "first ok",
            "waited",
            "attempts",
            "interval",
            "polling lag",
        ],
        "llllrrrrrrr",
        rows,
        "waits",
    )


def _phases_table(phases: list[model.PhaseRow], t0: int) -> TableDict:
    rows = [
        [
            p["name"],
            model.fmt_t(p["start_ns"], t0),
            model.fmt_t(p["end_ns"], t0),
            model.fmt_ns(p["duration_ns"]),
            p["defined_by"] or "–",
        ]
        for p in phases
    ]
    return _table(["phase", "start", "end", "duration", "defined by"], "lrrrl", rows, "phases")


def _milestones_table(miles: list[model.MilestoneRow], t0: int) -> TableDict:
    rows = [[model.fmt_t(m["ts_ns"], t0), m["name"], m["detail"]] for m in miles]
    return _table(["time", "milestone", "detail"], "rll", rows, "milestones")


# ----------------------------------------------------------------------------- figures


def _proc_hover(p: model.ProcessRow, t0: int) -> str:
    end = "still running at trace end" if p["end_ns"] is None else model.fmt_t(p["end_ns"], t0)
    status = ""
    if p["exit_signal"]:
        status = f" · killed by signal {p['exit_signal']}"
    elif p["exit_code"] is not None:
        status = f" · exit {p['exit_code']}"
    unit = f" · unit {esc(p['unit'])}" if p["unit"] else ""
    return (
        f"<b>{esc(p['comm'])}</b> pid {p['pid']} · {esc(p['component'])}{unit}"
        f"{' · ON CRITICAL PATH' if p['on_critical_path'] else ''}<br>"
        f"{_wrap(p['argv'] or [p['exe'] or p['comm']])}<br>"
        f"start {model.fmt_t(p['start_ns'], t0)} · end {end}{status}"
    )


def _pick_timeline(procs: list[model.ProcessRow]) -> list[model.ProcessRow]:
    """The rows worth a line: on the critical path first, then the longest-lived."""

    def rank(p: model.ProcessRow) -> tuple[int, int, int]:
        start = p["start_ns"] or 0
        end = p["end_ns"] if p["end_ns"] is not None else 2**62
        return (0 if p["on_critical_path"] else 1, -(end - start), p["pid"])

    return sorted(procs, key=rank)[:MAX_TIMELINE_ROWS]


def _band_of(procs: list[model.ProcessRow]) -> Callable[[model.ProcessRow], str]:
    """The timeline band of a row: its unit / pod when any row has one, else its component."""
    if any(p["group"] for p in procs):
        return lambda p: p["group"] or "(no unit)"
    return lambda p: p["component"]


def _window(f: model.Facts) -> tuple[int, int]:
    """The analysis window (start..end milestone; the recording's end when it was not reached)."""
    lo = f["analysis_start_ns"]
    hi = f["analysis_end_ns"] if f["end_reached"] else max(f["end_ns"], lo)
    return lo, max(hi, lo)


def _active_in_window(
    procs: list[model.ProcessRow], lo: int, hi: int, active: set[int]
) -> list[model.ProcessRow]:
    """Processes that did something inside [lo, hi]: started, ended, or have an event there.
    A process merely alive throughout (a kernel thread from the attach snapshot) is left out."""

    def inside(t: int | None) -> bool:
        return t is not None and lo <= t <= hi

    out = []
    for p in procs:
        start = p["start_ns"] if p["start_ns"] is not None else -(2**63)
        end = p["end_ns"] if p["end_ns"] is not None else 2**63
        overlaps = start <= hi and end >= lo
        if p["on_critical_path"] or (
            overlaps and (inside(p["start_ns"]) or inside(p["end_ns"]) or p["pid"] in active)
        ):
            out.append(p)
    return out


def _timeline_figure(
    procs: list[model.ProcessRow],
    segs: list[model.SegmentRow],
    f: model.Facts,
    active: set[int],
) -> str:
    t0, t_end = f["start_ns"], max(f["end_ns"], f["analysis_end_ns"])
    lo, hi = _window(f)
    in_window = _active_in_window(procs, lo, hi, active)
    idle = len(procs) - len(in_window)
    shown = _pick_timeline(in_window)
    if not shown and not segs:
        return empty_figure(
            "fig-timeline",
            "No process did anything inside the analysis window."
            if procs
            else "No processes in this trace.",
        )
    components = sorted({p["component"] for p in shown})
    color = {c: COMPONENT_PALETTE[i % len(COMPONENT_PALETTE)] for i, c in enumerate(components)}
    band_of = _band_of(shown)
    # group by systemd unit / pod when the trace has them, else by component (by the band's
    # first start), then by start time within it; colors stay per component
    first_start: dict[str, int] = {}
    for p in shown:
        s = p["start_ns"] if p["start_ns"] is not None else t0
        first_start[band_of(p)] = min(first_start.get(band_of(p), s), s)
    shown.sort(key=lambda p: (first_start[band_of(p)], band_of(p), p["start_ns"] or t0, p["pid"]))
    labels: list[str] = []
    seen: dict[str, int] = {}
    for p in shown:
        label = f"{esc(p['comm'] or '?')} [{p['pid']}]"
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    cp_label = "<b>critical path</b>"
    categories = ([cp_label] if segs else []) + labels

    fig = go.Figure()
    for kind in [k for k in model.SEGMENT_KINDS if any(s["kind"] == k for s in segs)] + sorted(
        {s["kind"] for s in segs} - set(model.SEGMENT_KINDS)
    ):
        ks = [s for s in segs if s["kind"] == kind]
        fig.add_trace(
            go.Bar(
                name=f"path: {kind}",
                orientation="h",
                y=[cp_label] * len(ks),
                base=[_s(s["start_ns"], t0) for s in ks],
                x=[_dur_s(s["end_ns"] - s["start_ns"]) for s in ks],
                marker={"color": SEGMENT_COLORS.get(kind, "#7f7f7f")},
                customdata=[
                    [
                        f"<b>{esc(kind)}</b> {esc(s['label'])}<br>"
                        f"{esc(s['comm'])} [{s['pid']}]<br>"
                        f"{model.fmt_t(s['start_ns'], t0)} → {model.fmt_t(s['end_ns'], t0)} · "
                        f"{model.fmt_ns(s['end_ns'] - s['start_ns'])}"
                    ]
                    for s in ks
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    for comp in components:
        idx = [i for i, p in enumerate(shown) if p["component"] == comp]
        rows = [shown[i] for i in idx]
        starts = [p["start_ns"] if p["start_ns"] is not None else t0 for p in rows]
        ends = [p["end_ns"] if p["end_ns"] is not None else t_end for p in rows]
        fig.add_trace(
            go.Bar(
                name=esc(comp),
                orientation="h",
                y=[labels[i] for i in idx],
                base=[_s(s, t0) for s in starts],
                # a 1 ms floor so that a 200 µs helper is still a visible (hoverable) sliver
                x=[max(_dur_s(e - s), 0.001) for s, e in zip(starts, ends)],
                marker={
                    "color": color[comp],
                    "line": {
                        "color": [
                            "#d62728" if p["on_critical_path"] else color[comp] for p in rows
                        ],
                        "width": [2 if p["on_critical_path"] else 0 for p in rows],
                    },
                },
                customdata=[[_proc_hover(p, t0)] for p in rows],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    offset = 1 if segs else 0
    band = 0
    i = 0
    while i < len(shown):
        comp = band_of(shown[i])
        j = i
        while j < len(shown) and band_of(shown[j]) == comp:
            j += 1
        if band % 2 == 0:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": i + offset - 0.5,
                    "y1": j + offset - 0.5,
                    "layer": "below",
                    "line": {"width": 0},
                    "fillcolor": "rgba(0,0,0,0.04)",
                }
            )
        annotations.append(
            {
                "text": f"<i>{esc(comp)}</i>",
                "xref": "paper",
                "x": 1,
                "xanchor": "left",
                "yref": "y",
                "y": i + offset - 0.5,
                "yanchor": "top",
                "showarrow": False,
                "font": {"size": 10, "color": "#555"},
            }
        )
        band += 1
        i = j
    for ts, name in ((f["analysis_start_ns"], "start"), (f["analysis_end_ns"], "end")):
        if segs:
            x = _s(ts, t0)
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "x0": x,
                    "x1": x,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#d62728", "width": 1, "dash": "dot"},
                }
            )
            annotations.append(
                {
                    "text": name,
                    "xref": "x",
                    "x": x,
                    # "start" left of its line: right of it is the legend
                    "xanchor": "right" if name == "start" else "left",
                    "yref": "paper",
                    "y": 1,
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"size": 10, "color": "#d62728"},
                }
            )
    notes = []
    if idle:
        notes.append(
            f"{idle} processes with no event in the analysis window left out (alive throughout, "
            "e.g. kernel threads from the attach snapshot)"
        )
    if len(in_window) > len(shown):
        notes.append(
            f"{len(in_window) - len(shown)} more not shown (short-lived ones are in the execs "
            "chart below)"
        )
    if notes:
        annotations.append(
            {
                "text": "; ".join(notes),
                "xref": "paper",
                "x": 0,
                "xanchor": "left",
                "yref": "paper",
                "y": 0,
                "yanchor": "top",
                "yshift": -40,
                "showarrow": False,
                "font": {"size": 10},
            }
        )
    return _window_figure(
        fig,
        f,
        "fig-timeline",
        110 + 20 * len(categories),
        "seconds since recording started (the analysis window)",
        barmode="overlay",
        margin={"l": 10, "r": 100, "t": 30, "b": 60},
        bargap=0.25,
        shapes=shapes,
        annotations=annotations,
        yaxis=_process_axis(categories),
    )


def _x_range(f: model.Facts) -> list[float | None]:
    """The timeline's x range (seconds since recording started): the analysis window plus a
    margin; the busy-cores chart shares it so the two line up."""
    lo, hi = _window(f)
    margin_ns = max((hi - lo) // 40, 1_000_000)
    t0 = f["start_ns"]
    return [_s(lo - margin_ns, t0), _s(hi + margin_ns, t0)]


def _window_figure(
    fig: go.Figure, f: model.Facts, div_id: str, height: int, x_title: str, **extra: Any
) -> str:
    """A chart on the analysis window's time axis (seconds since recording started, the
    range of _x_range): the timeline, the busy-cores chart and the state lanes share it, so
    they line up; `extra` is the rest of the chart's layout."""
    xaxis = {"title": {"text": x_title}, "zeroline": False, "range": _x_range(f)}
    fig.update_layout(layout(height, xaxis=xaxis, **extra))
    return figure_html(fig, div_id)


def _process_axis(names: list[str]) -> dict[str, Any]:
    """A y axis of one row per process, top to bottom in the given order."""
    return {
        "categoryorder": "array",
        "categoryarray": names,
        "autorange": "reversed",
        "automargin": True,
        "tickfont": {"family": "monospace", "size": 10},
    }


def _busy_cores_figure(busy: model.BusyCores | None, f: model.Facts) -> str:
    """Busy cores per bucket as a step line (each bucket drawn over its whole width)."""
    if busy is None or not busy["start_ns"]:
        return empty_figure("fig-busy-cores", "No busy-cores timeline in this analysis.")
    t0 = f["start_ns"]
    xs = [_s(t, t0) for t in busy["start_ns"]]
    ys = list(busy["cores"])
    # close the last bucket: a step line otherwise stops at the last bucket's start
    xs.append(_s(busy["start_ns"][-1] + busy["bucket_ns"], t0))
    ys.append(ys[-1])
    fig = go.Figure(
        go.Scatter(
            name="busy cores",
            mode="lines",
            x=xs,
            y=ys,
            line={"shape": "hv", "color": STATE_COLORS["cpu"], "width": 1},
            fill="tozeroy",
            hovertemplate="+%{x:.3f} s: %{y:.2f} cores busy<extra></extra>",
        )
    )
    return _window_figure(
        fig,
        f,
        "fig-busy-cores",
        200,
        "seconds since recording started (the analysis window)",
        showlegend=False,
        yaxis={"title": {"text": "busy cores"}, "rangemode": "tozero"},
    )


def _state_lanes_figure(lanes: Any, f: model.Facts) -> str:
    """One lane per process on the critical path: runs of its dominant state per bucket, as
    horizontal bars on the busy-cores chart's time axis (the analysis' `state_lanes`)."""
    rows = (lanes or {}).get("lanes") or [] if isinstance(lanes, dict) else []
    if not rows:
        return empty_figure("fig-state-lanes", "No per-process state lanes in this analysis.")
    t0 = f["start_ns"]
    names = [f"{esc(r.get('comm') or '?')} [{int(r['pid'])}]" for r in rows]
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        ys: list[str] = []
        base: list[float | None] = []
        xs: list[float] = []
        hover: list[str] = []
        for name, r in zip(names, rows):
            for a, b, st in zip(r["start_ns"], r["end_ns"], r["state"]):
                if st != state:
                    continue
                ys.append(name)
                base.append(_s(int(a), t0))
                xs.append(_dur_s(int(b) - int(a)))
                hover.append(f"{model.fmt_t(int(a), t0)}, {model.fmt_ns(int(b) - int(a))}")
        fig.add_trace(
            go.Bar(
                name=esc(STATE_NAMES[state]),
                orientation="h",
                y=ys,
                base=base,
                x=xs,
                marker={"color": color, "line": {"width": 0}},
                customdata=hover,
                hovertemplate=f"<b>%{{y}}</b><br>{esc(STATE_NAMES[state])}: %{{customdata}}"
                "<extra></extra>",
            )
        )
    left = int(lanes.get("left_out") or 0)
    return _window_figure(
        fig,
        f,
        "fig-state-lanes",
        90 + 26 * len(rows),
        "seconds since recording started: dominant state per "
        f"{int(lanes.get('bucket_ns') or 0) / 1e6:.1f} ms"
        + (f" ({left} more processes on the path not shown)" if left else ""),
        barmode="overlay",
        bargap=0.25,
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0,
                "font": {"size": 11}, "traceorder": "normal"},
        yaxis=_process_axis(names),
    )


def _blockers_tables(a: Analysis) -> dict[str, TableDict]:
    """Top blockers (the analysis' `blockers`, record --sched): fsync-family calls per process
    and wakeup edges, each list longest first; no table without the section."""
    b = a.sections.get("blockers")
    if not isinstance(b, dict):
        return {}
    rows: list[list[str]] = []
    for r in b.get("fsync") or []:
        calls = ", ".join(f"{n} {k}" for k, n in sorted((r.get("by_kind") or {}).items()))
        rows.append(["fsync", _who(r["pid"], r.get("comm") or "?"), calls,
                     model.fmt_ns(r["total_ns"]), model.fmt_ns(r["max_ns"]), "–"])
    for r in b.get("wakeups") or []:
        rows.append([
            "wakeup",
            f"{_who(r['waker_pid'], r.get('waker_comm') or '?')} → "
            f"{_who(r['woken_pid'], r.get('woken_comm') or '?')}",
            f"{r['count']}x",
            model.fmt_ns(r["idle_ns"]),
            model.fmt_ns(r["max_idle_ns"]),
            model.fmt_ns(r["path_ns"]) if r["path_ns"] else "–",
        ])
    return {
        "blockers": _table(
            ["blocker", "who", "calls / wakeups", "total (idle ended)", "longest",
             "on the critical path"],
            "llrrrr",
            rows,
            "blockers",
        )
    }


def _segment_states_figure(segs: list[model.SegmentRow], f: model.Facts) -> str:
    """One horizontal stacked bar per significant segment with states (ms per state, summing
    to the segment), the whole path's sum first."""
    total = f["total_ns"] or sum(s["end_ns"] - s["start_ns"] for s in segs)
    shown = [
        (i, s)
        for i, s in enumerate(segs)
        if "states" in s and s["end_ns"] - s["start_ns"] >= STATES_MIN_SHARE * total
    ]
    if not shown:
        return empty_figure(
            "fig-segment-states", "No critical-path segment carries scheduler states."
        )
    t0 = f["start_ns"]
    path = dict.fromkeys(STATE_COLORS, 0)
    for s in segs:
        for k, v in s.get("states", {}).items():
            path[k] = path.get(k, 0) + v
    rows: list[tuple[str, dict[str, int], int, str]] = [
        ("whole path", path, sum(path.values()), "states summed over every segment that has them")
    ]
    for i, s in shown:
        who = s.get("states_of", "") if s["kind"] != "run" else _who(s["pid"], s["comm"])
        rows.append(
            (
                f"#{i + 1} {esc(s['kind'])} {esc(who)}",
                s.get("states", {}),
                s["end_ns"] - s["start_ns"],
                f"{esc(s['label'] or s['comm'])} at {model.fmt_t(s['start_ns'], t0)}",
            )
        )
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        fig.add_trace(
            go.Bar(
                name=esc(STATE_NAMES[state]),
                orientation="h",
                y=[r[0] for r in rows],
                x=[round(r[1].get(state, 0) / 1e6, 3) for r in rows],
                marker={"color": color, "line": {"color": "#666", "width": 0.5}},
                customdata=[
                    [f"{_pct(r[1].get(state, 0), r[2])} of {model.fmt_ns(r[2])}", r[3]]
                    for r in rows
                ],
                hovertemplate=f"<b>%{{y}}</b><br>{esc(STATE_NAMES[state])}: %{{x:.1f}} ms "
                "(%{customdata[0]})<br>%{customdata[1]}<extra></extra>",
            )
        )
    fig.update_layout(
        layout(
            110 + 24 * len(rows),
            barmode="stack",
            # plotly lists stacked bars' legend bottom-up; keep the state order (running first)
            legend={
                "orientation": "h",
                "y": 1.0,
                "yanchor": "bottom",
                "x": 0,
                "font": {"size": 11},
                "traceorder": "normal",
            },
            xaxis={"title": {"text": "ms in each state"}, "zeroline": False},
            yaxis={
                "categoryorder": "array",
                "categoryarray": [r[0] for r in rows],
                "autorange": "reversed",
                "automargin": True,
                "tickfont": {"family": "monospace", "size": 10},
            },
        )
    )
    return figure_html(fig, "fig-segment-states")


def _connects_figure(
    conns: dict[str, list[Any]],
    lists: dict[str, list[Any]],
    waits: list[model.WaitRow],
    t0: int,
) -> str:
    n = len(conns["ts_ns"])
    if n == 0 and not lists["ts_ns"]:
        return empty_figure("fig-connects", "No connect() or listen() in this trace.")
    # endpoints: those in waits first, then by number of attempts
    attempts: dict[str, int] = {}
    for ep in conns["endpoint"]:
        attempts[ep or "?"] = attempts.get(ep or "?", 0) + 1
    waited = {w["endpoint"] for w in waits if w["endpoint"]}
    for ep in lists["endpoint"]:
        attempts.setdefault(ep or "?", 0)
    ranked = sorted(attempts, key=lambda e: (e not in waited, -attempts[e], e))
    endpoints = sorted(ranked[:MAX_ENDPOINT_ROWS])
    keep = set(endpoints)

    fig = go.Figure()
    by_outcome: dict[str, list[int]] = {}
    for i in range(n):
        ep = conns["endpoint"][i] or "?"
        if ep in keep:
            by_outcome.setdefault(conns["outcome"][i] or "unknown", []).append(i)
    dropped = 0
    outcome_order = [o for o in OUTCOME_COLORS if o in by_outcome] + sorted(
        o for o in by_outcome if o not in OUTCOME_COLORS
    )
    series = {(conns["endpoint"][i] or "?", o) for o, ids in by_outcome.items() for i in ids}
    limit = _series_limit(MAX_CONNECT_POINTS, len(series))
    for outcome in outcome_order:
        # sample per endpoint so that a chatty endpoint cannot hide a quiet one
        per_ep: dict[str, list[int]] = {}
        for i in by_outcome[outcome]:
            per_ep.setdefault(conns["endpoint"][i] or "?", []).append(i)
        idx: list[int] = []
        for ep in sorted(per_ep):
            chosen = _sample(per_ep[ep], limit)
            dropped += len(per_ep[ep]) - len(chosen)
            idx.extend(chosen)
        idx.sort()
        hover = []
        for i in idx:
            ts, ons = conns["ts_ns"][i], conns["outcome_ns"][i]
            took = f" after {model.fmt_ns(ons - ts)}" if ons is not None and ons >= ts else ""
            errno = f" (errno {conns['outcome_errno'][i]})" if conns["outcome_errno"][i] else ""
            hover.append([f"{errno}{took}", f"{esc(conns['comm'][i] or '?')} [{conns['pid'][i]}]"])
        fig.add_trace(
            go.Scatter(
                name=esc(outcome),
                mode="markers",
                x=[_s(conns["ts_ns"][i], t0) for i in idx],
                y=[esc(conns["endpoint"][i] or "?") for i in idx],
                marker={
                    "color": OUTCOME_COLORS.get(outcome, "#333"),
                    "size": 7,
                    "symbol": "circle" if outcome == "ok" else "x",
                },
                customdata=hover,
                hovertemplate=f"<b>%{{y}}</b> {esc(outcome)}%{{customdata[0]}}<br>"
                "%{customdata[1]} at +%{x:.6f} s<extra></extra>",
            )
        )
    li = [i for i, ep in enumerate(lists["endpoint"]) if (ep or "?") in keep]
    if li:
        fig.add_trace(
            go.Scatter(
                name="listen",
                mode="markers",
                x=[_s(lists["ts_ns"][i], t0) for i in li],
                y=[esc(lists["endpoint"][i] or "?") for i in li],
                marker={
                    "color": "#000",
                    "size": 11,
                    "symbol": "diamond-open",
                    "line": {"width": 2},
                },
                customdata=[
                    [
                        f"<b>listen</b> {esc(lists['endpoint'][i] or '?')}<br>"
                        f"{esc(lists['comm'][i] or '?')} [{lists['pid'][i]}] at "
                        f"{model.fmt_t(lists['ts_ns'][i], t0)}"
                    ]
                    for i in li
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    lag_x: list[float | None] = []
    lag_y: list[str | None] = []
    lag_hover: list[list[str] | None] = []
    for w in waits:
        if (
            w["lag_ns"]
            and w["ready_ns"] is not None
            and w["first_ok_ns"] is not None
            and (w["endpoint"] or "?") in keep
        ):
            y = esc(w["endpoint"] or "?")
            text = (
                f"<b>polling lag {model.fmt_ns(w['lag_ns'])}</b> on {y}<br>"
                f"ready {model.fmt_t(w['ready_ns'], t0)} → first ok "
                f"{model.fmt_t(w['first_ok_ns'], t0)}<br>"
                f"{w['attempts']} attempts every {model.fmt_ns(w['interval_ns'])} by "
                f"{esc(w['waiter_comm'])} [{w['waiter_pid']}]"
            )
            lag_x += [_s(w["ready_ns"], t0), _s(w["first_ok_ns"], t0), None]
            lag_y += [y, y, None]
            lag_hover += [[text], [text], None]
    if lag_x:
        fig.add_trace(
            go.Scatter(
                name="polling lag",
                mode="lines",
                x=lag_x,
                y=lag_y,
                line={"color": "rgba(255,127,14,0.55)", "width": 9},
                customdata=lag_hover,
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    annotations = []
    if dropped or len(attempts) > len(endpoints):
        annotations.append(
            {
                "text": f"sampled: {dropped} attempts and "
                f"{len(attempts) - len(endpoints)} endpoints not drawn "
                "(all are counted in the analysis)",
                "xref": "paper",
                "x": 0,
                "xanchor": "left",
                "yref": "paper",
                "y": 0,
                "yanchor": "top",
                "yshift": -22,
                "showarrow": False,
                "font": {"size": 10},
            }
        )
    fig.update_layout(
        layout(
            120 + 26 * len(endpoints),
            annotations=annotations,
            yaxis={
                "categoryorder": "array",
                "categoryarray": [esc(e) for e in endpoints],
                "autorange": "reversed",
                "automargin": True,
                "tickfont": {"family": "monospace", "size": 10},
            },
        )
    )
    return figure_html(fig, "fig-connects")


def _events_figure(
    miles: list[model.MilestoneRow],
    mods: dict[str, list[Any]],
    execs: dict[str, list[Any]],
    t0: int,
) -> str:
    if not miles and not mods["ts_ns"] and not execs["ts_ns"]:
        return empty_figure("fig-events", "No milestones, module loads or execs in this trace.")
    fig = go.Figure()
    rows: list[str] = []
    if miles:
        y = [f"★ {esc(m['name'])}" for m in miles]
        rows += list(dict.fromkeys(y))
        fig.add_trace(
            go.Scatter(
                name="milestone",
                mode="markers",
                x=[_s(m["ts_ns"], t0) for m in miles],
                y=y,
                marker={"color": "#d62728", "size": 11, "symbol": "star"},
                customdata=[
                    [
                        f"<b>{esc(m['name'])}</b> at {model.fmt_t(m['ts_ns'], t0)}<br>"
                        f"{esc(m['detail'])}"
                    ]
                    for m in miles
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    if mods["ts_ns"]:
        y = ["module loads"] * len(mods["ts_ns"])
        rows.append("module loads")
        fig.add_trace(
            go.Scatter(
                name="module load",
                mode="markers+text",
                x=[_s(t, t0) for t in mods["ts_ns"]],
                y=y,
                text=[esc(n or "?") for n in mods["name"]],
                textposition="top center",
                marker={"color": "#8c564b", "size": 9, "symbol": "square"},
                customdata=[
                    [
                        f"<b>module {esc(mods['name'][i] or '?')}</b> "
                        f"({esc(mods['kind'][i])})<br>"
                        f"by {esc(mods['comm'][i] or '?')} [{mods['pid'][i]}] at "
                        f"{model.fmt_t(mods['ts_ns'][i], t0)}"
                    ]
                    for i in range(len(mods["ts_ns"]))
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    if execs["ts_ns"]:
        counts: dict[str, int] = {}
        for prog in execs["program"]:
            counts[prog] = counts.get(prog, 0) + 1
        room = max(1, MAX_EVENT_ROWS - len(rows))
        progs = sorted(counts, key=lambda p: (-counts[p], p))[:room]
        keep = set(progs)
        per_prog: dict[str, list[int]] = {}
        for i, prog in enumerate(execs["program"]):
            if prog in keep:
                per_prog.setdefault(prog, []).append(i)
        limit = _series_limit(MAX_EXEC_POINTS, len(per_prog))
        idx = sorted(i for p in sorted(per_prog) for i in _sample(per_prog[p], limit))
        rows += [f"exec {esc(p)} ×{counts[p]}" for p in sorted(progs)]
        fig.add_trace(
            go.Scatter(
                name="exec",
                mode="markers",
                x=[_s(execs["ts_ns"][i], t0) for i in idx],
                y=[f"exec {esc(execs['program'][i])} ×{counts[execs['program'][i]]}" for i in idx],
                marker={"color": "#1f77b4", "size": 7, "symbol": "triangle-right"},
                customdata=[
                    [
                        f"<b>exec {esc(execs['program'][i])}</b> pid {execs['pid'][i]} "
                        f"(parent {execs['ppid'][i]}) at {model.fmt_t(execs['ts_ns'][i], t0)}<br>"
                        f"{_wrap(execs['argv'][i] or [execs['filename'][i] or '?'])}"
                    ]
                    for i in idx
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    fig.update_layout(
        layout(
            120 + 24 * len(rows),
            yaxis={
                "categoryorder": "array",
                "categoryarray": rows,
                "autorange": "reversed",
                "automargin": True,
                "tickfont": {"family": "monospace", "size": 10},
            },
        )
    )
    return figure_html(fig, "fig-events")


# ----------------------------------------------------------------------------- page


def _page(payload: ReportPayload, figures: list[tuple[str, str, str, str]]) -> str:
    fig = {anchor: (title, help_text, body) for anchor, title, help_text, body in figures}
    sections = [
        section("timeline", *fig["timeline"]),
        *([section("sched", *fig["sched"])] if "sched" in fig else []),
        *([section("stacks", *fig["stacks"])] if "stacks" in fig else []),
        section(
            "critical-path",
            "Critical path",
            "The chain of work and waits that decided when the end milestone happened; "
            "segments are contiguous and sum to the total. Shortening anything else does not "
            "make startup faster. By kind, by executable and by component first (a helper run "
            "60 times is one row there), then every segment.",
            table_box("composition")
            + "<br>"
            + table_box("path_by_executable")
            + "<br>"
            + table_box("path_by_component")
            + "<br>"
            + table_box("critical_path"),
        ),
        section("connects", *fig["connects"]),
        section(
            "waits",
            "Waits",
            "Who waited for whom: listener waits (connects failing until a listen), poll loops "
            "(regular connects until an answer), helpers a parent waited for, module loads. "
            "Polling lag is time lost between the target being ready and the waiter noticing.",
            table_box("waits"),
        ),
        section(
            "phases",
            "Phases",
            "Startup phases as the k3s startup work measures them; each names the events that "
            "define it. A phase whose events are not in the trace is absent, never guessed.",
            table_box("phases"),
        ),
        section(
            "events",
            fig["events"][0],
            fig["events"][1],
            fig["events"][2]
            + ("<br>" + table_box("module_loads") if "module_loads" in payload["tables"] else ""),
        ),
        section(
            "milestones", "Milestones", "Moments the analyzer recognized.", table_box("milestones")
        ),
    ]
    nav = " ".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("timeline", "Timeline"),
            *([("sched", "Scheduler")] if "sched" in fig else []),
            *([("stacks", "Stacks")] if "stacks" in fig else []),
            ("critical-path", "Critical path"),
            ("connects", "Connects"),
            ("waits", "Waits"),
            ("phases", "Phases"),
            ("events", "Execs &amp; modules"),
            ("milestones", "Milestones"),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>k3sprof report</title>\n"
        f"<style>{CSS}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{plotly.offline.get_plotlyjs()}</script>\n"
        "</head><body><main>\n"
        '<header><h1 id="title">k3sprof report</h1>'
        '<div id="warnings"></div><div id="facts"></div></header>\n'
        f'<section id="headline"></section>\n<nav>{nav}</nav>\n'
        + "".join(sections)
        + f"<footer>k3sprof {html.escape(__version__)} · self-contained: opens offline · "
        "argv and secrets redacted unless --no-redact was given</footer>\n"
        "</main>\n"
        f'<script type="application/json" id="k3sprof-data">{payload_json(payload)}</script>\n'
        f"<script>{JS}</script>\n"
        "</body></html>\n"
    )
