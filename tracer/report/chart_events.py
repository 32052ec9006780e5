"""The report's event charts: connect attempts per endpoint (by their real outcome, with listens
and polling lag), and milestones, module loads and execs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from tracer import units
from tracer.report import model
from tracer.report.charts import (
    MAX_CONNECT_POINTS,
    MAX_ENDPOINT_ROWS,
    MAX_EVENT_ROWS,
    MAX_EXEC_POINTS,
    MAX_POINTS_PER_SERIES,
    OUTCOME_COLORS,
    Chart,
    seconds,
    wrap_argv,
)
from tracer.report.page import esc


def sample_even(indices: Sequence[int], limit: int) -> list[int]:
    """At most `limit` evenly spaced items, always keeping the first and the last."""
    n = len(indices)
    if n <= limit:
        return list(indices)
    step = (n - 1) / (limit - 1)
    return [indices[round(i * step)] for i in range(limit)]

def series_limit(budget: int, n_series: int) -> int:
    """Points per series: the budget shared out, within [30, MAX_POINTS_PER_SERIES]."""
    return max(30, min(MAX_POINTS_PER_SERIES, budget // max(1, n_series)))

def connects_figure(
    conns: dict[str, list[Any]],
    lists: dict[str, list[Any]],
    waits: list[model.WaitRow],
    t0: int,
) -> Chart:
    n = len(conns["ts_ns"])
    if n == 0 and not lists["ts_ns"]:
        return Chart("fig-connects", empty="No connect() or listen() in this trace.")
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
    limit = series_limit(MAX_CONNECT_POINTS, len(series))
    for outcome in outcome_order:
        # sample per endpoint so that a chatty endpoint cannot hide a quiet one
        per_ep: dict[str, list[int]] = {}
        for i in by_outcome[outcome]:
            per_ep.setdefault(conns["endpoint"][i] or "?", []).append(i)
        idx: list[int] = []
        for ep in sorted(per_ep):
            chosen = sample_even(per_ep[ep], limit)
            dropped += len(per_ep[ep]) - len(chosen)
            idx.extend(chosen)
        idx.sort()
        hover = []
        for i in idx:
            ts, ons = conns["ts_ns"][i], conns["outcome_ns"][i]
            took = f" after {units.fmt_ns(ons - ts)}" if ons is not None and ons >= ts else ""
            errno = f" (errno {conns['outcome_errno'][i]})" if conns["outcome_errno"][i] else ""
            hover.append([f"{errno}{took}", f"{esc(conns['comm'][i] or '?')} [{conns['pid'][i]}]"])
        fig.add_trace(
            go.Scatter(
                name=esc(outcome),
                mode="markers",
                x=[seconds(conns["ts_ns"][i], t0) for i in idx],
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
                x=[seconds(lists["ts_ns"][i], t0) for i in li],
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
                        f"{units.fmt_t(lists['ts_ns'][i], t0)}"
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
                f"<b>polling lag {units.fmt_ns(w['lag_ns'])}</b> on {y}<br>"
                f"ready {units.fmt_t(w['ready_ns'], t0)} → first ok "
                f"{units.fmt_t(w['first_ok_ns'], t0)}<br>"
                f"{w['attempts']} attempts every {units.fmt_ns(w['interval_ns'])} by "
                f"{esc(w['waiter_comm'])} [{w['waiter_pid']}]"
            )
            lag_x += [seconds(w["ready_ns"], t0), seconds(w["first_ok_ns"], t0), None]
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
    return Chart("fig-connects", fig, height=120 + 26 * len(endpoints),
                 rows=[esc(e) for e in endpoints], layout={"annotations": annotations})

def events_figure(
    miles: list[model.MilestoneRow],
    mods: dict[str, list[Any]],
    execs: dict[str, list[Any]],
    t0: int,
) -> Chart:
    if not miles and not mods["ts_ns"] and not execs["ts_ns"]:
        return Chart("fig-events", empty="No milestones, module loads or execs in this trace.")
    fig = go.Figure()
    rows: list[str] = []
    if miles:
        y = [f"★ {esc(m['name'])}" for m in miles]
        rows += list(dict.fromkeys(y))
        fig.add_trace(
            go.Scatter(
                name="milestone",
                mode="markers",
                x=[seconds(m["ts_ns"], t0) for m in miles],
                y=y,
                marker={"color": "#d62728", "size": 11, "symbol": "star"},
                customdata=[
                    [
                        f"<b>{esc(m['name'])}</b> at {units.fmt_t(m['ts_ns'], t0)}<br>"
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
                x=[seconds(t, t0) for t in mods["ts_ns"]],
                y=y,
                text=[esc(n or "?") for n in mods["name"]],
                textposition="top center",
                marker={"color": "#8c564b", "size": 9, "symbol": "square"},
                customdata=[
                    [
                        f"<b>module {esc(mods['name'][i] or '?')}</b> "
                        f"({esc(mods['kind'][i])})<br>"
                        f"by {esc(mods['comm'][i] or '?')} [{mods['pid'][i]}] at "
                        f"{units.fmt_t(mods['ts_ns'][i], t0)}"
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
        limit = series_limit(MAX_EXEC_POINTS, len(per_prog))
        idx = sorted(i for p in sorted(per_prog) for i in sample_even(per_prog[p], limit))
        rows += [f"exec {esc(p)} ×{counts[p]}" for p in sorted(progs)]
        fig.add_trace(
            go.Scatter(
                name="exec",
                mode="markers",
                x=[seconds(execs["ts_ns"][i], t0) for i in idx],
                y=[f"exec {esc(execs['program'][i])} ×{counts[execs['program'][i]]}" for i in idx],
                marker={"color": "#1f77b4", "size": 7, "symbol": "triangle-right"},
                customdata=[
                    [
                        f"<b>exec {esc(execs['program'][i])}</b> pid {execs['pid'][i]} "
                        f"(parent {execs['ppid'][i]}) at {units.fmt_t(execs['ts_ns'][i], t0)}<br>"
                        f"{wrap_argv(execs['argv'][i] or [execs['filename'][i] or '?'])}"
                    ]
                    for i in idx
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    return Chart("fig-events", fig, height=120 + 24 * len(rows), rows=rows)
