"""The report's tables and text: each a TableDict (columns, alignment, rows of strings) that the
page's script turns into a table with textContent, so no recorded string becomes markup."""

from __future__ import annotations

from tracer import units
from tracer.analyzer.model import Analysis
from tracer.report import model
from tracer.report.page import TableDict

MAX_TABLE_ROWS = 300

#: beyond this many critical-path segments, the table lists only those of >= 1% of the total
CRITICAL_PATH_ROWS = 40


def make_table(columns: list[str], align: str, rows: list[list[str]], what: str) -> TableDict:
    note = ""
    if len(rows) > MAX_TABLE_ROWS:
        note = f"showing the first {MAX_TABLE_ROWS} of {len(rows)} {what}"
        rows = rows[:MAX_TABLE_ROWS]
    return TableDict(columns=columns, align=align, rows=rows, note=note)

def headline(
    f: model.Facts, segs: list[model.SegmentRow], waits: list[model.WaitRow],
    comp: dict[str, int],
) -> list[str]:
    """comp: the critical path's time per segment kind (model.composition)."""
    out = []
    if not f["end_reached"] or not segs:
        out.append(
            f"Recorded {units.fmt_ns(f['duration_ns'])}; the end milestone was not reached, "
            "so there is no critical path."
        )
    else:
        total = f["total_ns"] or sum(s["end_ns"] - s["start_ns"] for s in segs)
        waited = sum(v for k, v in comp.items() if k != "run")
        out.append(
            f"Startup took {units.fmt_ns(total)} on the critical path "
            f"(+{(f['analysis_start_ns'] - f['start_ns']) / 1e9:.3f} s → "
            f"+{(f['analysis_end_ns'] - f['start_ns']) / 1e9:.3f} s since recording started): "
            f"{units.pct(waited, total)} of it waiting, "
            f"{units.pct(comp.get('run', 0), total)} running."
        )
        top = sorted(
            (s for s in segs if s["kind"] != "run"),
            key=lambda s: (s["start_ns"] - s["end_ns"], s["start_ns"]),
        )[:3]
        for s in top:
            d = s["end_ns"] - s["start_ns"]
            out.append(
                f"{units.fmt_ns(d)} ({units.pct(d, total)}) {s['kind']}: {s['label'] or s['comm']}"
            )
    lags = [w for w in waits if w["lag_ns"] and w["in_window"]]
    if lags:
        lost = sum(w["lag_ns"] or 0 for w in lags)
        out.append(
            f"Polling lag: {len(lags)} wait(s) lost {units.fmt_ns(lost)} in total between an "
            "endpoint becoming ready and its client noticing."
        )
    return out

def facts_rows(f: model.Facts) -> list[list[str]]:
    rows = [
        ["trace", f["name"]],
        ["host", f["hostname"] or "unknown"],
        ["kernel", f["kernel"] or "unknown"],
        ["k3s version", f["k3s_version"] or "unknown (not seen in the trace)"],
        ["recorded", units.fmt_ns(f["duration_ns"])],
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

def critical_path_table(segs: list[model.SegmentRow], f: model.Facts) -> TableDict:
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
            f"{len(rest)} segments under 1% of the total each ({units.fmt_ns(rest_ns)}, "
            f"{units.pct(rest_ns, total)} together) are not listed; the timeline and the JSON "
            "data in this page have them all"
        )
    rows = [
        [
            s["kind"],
            s["label"],
            units.who(s["pid"], s["comm"]),
            units.fmt_t(s["start_ns"], f["start_ns"]),
            units.fmt_ns(s["end_ns"] - s["start_ns"]),
            units.pct(s["end_ns"] - s["start_ns"], total),
        ]
        for s in shown
    ]
    if any("states" in s for s in shown):
        # scheduler data (record --sched): what each run (or a wait's target) was doing
        for row, s in zip(rows, shown):
            row.append(states_cell(s))
        table = make_table(
            ["kind", "what", "process", "start", "duration", "% of total", "scheduler states"],
            "lllrrrl", rows, "segments",
        )
    else:
        table = make_table(
            ["kind", "what", "process", "start", "duration", "% of total"], "lllrrr", rows,
            "segments",
        )
    if note:
        table["note"] = note
    return table

def states_cell(s: model.SegmentRow) -> str:
    """"cpu 41% · runqueue 12% · sleep 47%" (states of >= 0.5 %), prefixed by the target's
    name for a wait segment."""
    st = s.get("states")
    if not st:
        return ""
    dur = max(s["end_ns"] - s["start_ns"], 1)
    parts = " · ".join(f"{k} {100 * v / dur:.0f}%" for k, v in st.items() if 200 * v >= dur)
    return parts if s["kind"] == "run" else f"{s.get('states_of', '?')}: {parts}"

def composition_table(comp: dict[str, int], f: model.Facts) -> TableDict:
    """comp: the critical path's time per segment kind (model.composition)."""
    total = f["total_ns"] or sum(comp.values())
    order = [k for k in model.SEGMENT_KINDS if k in comp] + sorted(
        k for k in comp if k not in model.SEGMENT_KINDS
    )
    rows = [[k, units.fmt_ns(comp[k]), units.pct(comp[k], total)] for k in order]
    return make_table(["kind", "time on the critical path", "% of total"], "lrr", rows, "kinds")

def module_loads_tables(a: Analysis, t0: int) -> dict[str, TableDict]:
    """Per loader (modprobe), each module it loaded, in order, with the load's duration; no
    table at all when the trace has no module loads (most kernels record none at all)."""
    loaders = a.module_loads or []
    rows = [
        [
            f"{e['command'][:80]} [{e['pid']}]",
            x["module"] or f"(not loaded: ret {x['ret']})",
            f"{(x['end_ns'] - t0) / 1e6:,.1f} ms",
            units.fmt_ns(x["duration_ns"]),
        ]
        for e in loaders
        for x in e["loads"]
    ]
    if not rows:
        return {}
    return {
        "module_loads": make_table(
            ["loaded by", "module", "done at", "load took"], "llrr", rows, "module loads"
        )
    }

def summary_table(rows: list[model.SummaryRow], what: str) -> TableDict:
    """The critical path by `what` (model.path_summary)."""
    return make_table(
        [what, "processes", "segments", "time on the critical path", "% of total"],
        "lrrrr",
        [
            [r["name"], str(r["processes"]), str(r["segments"]), units.fmt_ns(r["total_ns"]),
             f"{r['pct']:.1f}%"]
            for r in rows
        ],
        f"{what}s",
    )

def waits_table(
    waits: list[model.WaitRow], spans: list[tuple[int, int] | None], t0: int
) -> TableDict:
    """spans: each wait's (model.wait_span)."""

    def key(ws: tuple[model.WaitRow, tuple[int, int] | None]) -> tuple[bool, int, int]:
        # waits outside the analysis window (e.g. teardown retries after the end) come last
        w, span = ws
        return (
            not w["in_window"],
            -(span[1] - span[0]) if span else 0,
            w["first_attempt_ns"] or 0,
        )

    rows = []
    for w, span in sorted(zip(waits, spans), key=key):
        rows.append(
            [
                w["kind"] if w["in_window"] else f"{w['kind']} (outside the analysis window)",
                w["endpoint"] or "–",
                units.who(w["waiter_pid"], w["waiter_comm"]),
                units.who(w["target_pid"], w["target_comm"]),
                units.fmt_t(w["first_attempt_ns"], t0),
                units.fmt_t(w["ready_ns"], t0),
                units.fmt_t(w["first_ok_ns"], t0),
                units.fmt_ns(span[1] - span[0]) if span else "–",
                "–" if w["attempts"] is None else str(w["attempts"]),
                units.fmt_ns(w["interval_ns"]),
                units.fmt_ns(w["lag_ns"]),
            ]
        )
    return make_table(
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

def phases_table(phases: list[model.PhaseRow], t0: int) -> TableDict:
    rows = [
        [
            p["name"],
            units.fmt_t(p["start_ns"], t0),
            units.fmt_t(p["end_ns"], t0),
            units.fmt_ns(p["duration_ns"]),
            p["defined_by"] or "–",
        ]
        for p in phases
    ]
    return make_table(["phase", "start", "end", "duration", "defined by"], "lrrrl", rows, "phases")

def milestones_table(miles: list[model.MilestoneRow], t0: int) -> TableDict:
    rows = [[units.fmt_t(m["ts_ns"], t0), m["name"], m["detail"]] for m in miles]
    return make_table(["time", "milestone", "detail"], "rll", rows, "milestones")

def blockers_tables(a: Analysis) -> dict[str, TableDict]:
    """Top blockers (the analysis' `blockers`, record --sched): fsync-family calls per process
    and wakeup edges, each list longest first; no table without the section."""
    b = a.blockers
    if b is None:
        return {}
    rows: list[list[str]] = []
    for r in b["fsync"]:
        calls = ", ".join(f"{n} {k}" for k, n in sorted(r["by_kind"].items()))
        rows.append(["fsync", units.who(r["pid"], r["comm"] or "?"), calls,
                     units.fmt_ns(r["total_ns"]), units.fmt_ns(r["max_ns"]), "–"])
    for e in b["wakeups"]:
        rows.append([
            "wakeup",
            f"{units.who(e['waker_pid'], e['waker_comm'] or '?')} → "
            f"{units.who(e['woken_pid'], e['woken_comm'] or '?')}",
            f"{e['count']}x",
            units.fmt_ns(e["idle_ns"]),
            units.fmt_ns(e["max_idle_ns"]),
            units.fmt_ns(e["path_ns"]) if e["path_ns"] else "–",
        ])
    return {
        "blockers": make_table(
            ["blocker", "who", "calls / wakeups", "total (idle ended)", "longest",
             "on the critical path"],
            "llrrrr",
            rows,
            "blockers",
        )
    }
