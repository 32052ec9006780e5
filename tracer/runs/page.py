"""The many-runs comparison as one self-contained HTML page: each side's runs as points per
metric, and every B - A difference with its 95 % interval (plotly inlined once, offline)."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from markupsafe import Markup

from tracer.report import page
from tracer.report._output import write_output
from tracer.report.page import TableDict
from tracer.report.templating import render_page
from tracer.runs.compare import HEADER, MetricJson, RunsComparison, metric_rows

#: figure groups: (div id, title, metric kinds)
GROUPS = (
    ("fig-runs-phases", "Total and phases: every run", ("total", "phase")),
    ("fig-runs-path", "Critical path by kind: every run", ("path",)),
    ("fig-runs-waits", "Waits and polling lag per endpoint: every run", ("wait", "lag")),
)
COLORS = {"a": "#6baed6", "b": "#1f4e9c"}


def _s(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e9, 6)


def _runs_figure(c: RunsComparison, metrics: list[MetricJson], div_id: str, title: str) -> str:
    """One horizontal box per side and metric with every run drawn as a point."""
    fig = go.Figure()
    for side in ("a", "b"):
        info = c[side]
        ys: list[str] = []
        xs: list[float | None] = []
        runs: list[str] = []
        for m in metrics:
            for run, v in zip(info["runs"], m[side]["values_ns"]):
                if v is not None:
                    ys.append(html.escape(m["name"]))
                    xs.append(_s(v))
                    runs.append(html.escape(run))
        fig.add_trace(go.Box(
            name=html.escape(f"{side.upper()}: {info['name']} ({info['n']} runs)"),
            orientation="h", x=xs, y=ys, customdata=runs, boxpoints="all", jitter=0.4,
            pointpos=0, marker={"color": COLORS[side], "size": 7}, line={"width": 1},
            fillcolor="rgba(0,0,0,0)",
            hovertemplate="%{customdata}: %{x:.3f} s<extra>%{y}</extra>",
        ))
    fig.update_layout(page.layout(
        120 + 56 * max(1, len(metrics)), boxmode="group", title={"text": html.escape(title)},
        xaxis={"title": {"text": "seconds"}, "zeroline": False},
        yaxis={"autorange": "reversed", "automargin": True},
    ))
    return page.figure_html(fig, div_id)


def _diff_figure(metrics: list[MetricJson]) -> str:
    """B - A per metric: the difference of medians and its interval (red: excludes 0)."""
    fig = go.Figure()
    for sig, color, label in ((True, "#c0392b", "significant"),
                              (False, "#7f8c8d", "not significant")):
        ms = [m for m in metrics if m["significant"] is sig and m["diff_ns"] is not None]
        seg_x: list[float | None] = []
        seg_y: list[str | None] = []
        for m in ms:
            if m["diff_ci_ns"] is not None:
                lo, hi = m["diff_ci_ns"]
                seg_x += [_s(lo), _s(hi), None]
                seg_y += [html.escape(m["name"])] * 2 + [None]
        fig.add_trace(go.Scatter(
            x=seg_x, y=seg_y, mode="lines", line={"color": color, "width": 3},
            name=f"95 % interval ({label})", hoverinfo="skip",
        ))
        fig.add_trace(go.Scatter(
            x=[_s(m["diff_ns"]) for m in ms], y=[html.escape(m["name"]) for m in ms],
            mode="markers", marker={"color": color, "size": 9, "symbol": "diamond"},
            name=f"Δ median ({label})",
            hovertemplate="%{y}: Δ %{x:.3f} s<extra></extra>",
        ))
    n = len({m["name"] for m in metrics})
    fig.update_layout(page.layout(
        120 + 28 * max(1, n), title={"text": "B − A: difference of medians, 95 % interval"},
        xaxis={"title": {"text": "seconds (negative: B is faster)"}, "zeroline": True,
               "zerolinecolor": "#333", "zerolinewidth": 1},
        yaxis={"autorange": "reversed", "automargin": True, "type": "category"},
    ))
    return page.figure_html(fig, "fig-diffs")


def render_runs_html(c: RunsComparison) -> str:
    """One self-contained page (same bytes for the same comparison)."""
    table = TableDict(columns=HEADER, align="lrrrrrrrrl", rows=metric_rows(c), note=c["method"])
    data = {
        "title": f"k3sprof compare: {c['a']['name']} vs {c['b']['name']}",
        "tables": {"metrics": table},
        "comparison": c,
        "facts": [
            [s.upper(), f"{c[s]['name']}: {c[s]['n']} runs"
             + (f" (k3s {', '.join(c[s]['k3s_versions'])})"
                if c[s]["k3s_versions"] else "")]
            for s in ("a", "b")
        ],
        "warnings": list(c["notes"]),
        "headline": [
            f"{r[0]}: A {r[2]} → B {r[5]} (medians), Δ {r[7]}, 95 % interval {r[8]}"
            + (", significant" if m["significant"] else "")
            for m, r in zip(c["metrics"][:4], metric_rows(c)[:4])
        ],
    }
    figs = "".join(
        _runs_figure(c, ms, div, title)
        for div, title, kinds in GROUPS
        if (ms := [m for m in c["metrics"] if m["name"].split(":", 1)[0] in kinds])
    )

    return render_page("compare.html", heading="k3sprof compare", payload=data, figures={},
                       footer=c["method"], sections=[
        ("Differences (B − A)", Markup(_diff_figure(c["metrics"]))),
        ("Metrics", Markup(page.table_box("metrics"))),
        ("Runs", Markup(figs)),
    ])


def write_runs_html(c: RunsComparison, path: Path, *, force: bool = False) -> None:
    write_output(path, render_runs_html(c).encode("utf-8"), force)
