"""The report's stack figures (issue 23 part 5), from the analysis' `stacks` section only:

* a flame graph of the analysis window: the on-CPU samples' folded stacks as a plotly icicle
  (root at the top, callers above callees, width = samples; click a frame to zoom into it);
* a component lane per process with samples: its dominant component per bucket, as horizontal
  bars on the timeline's time axis (charts.figures_html gives it that axis' range).

Labels go through `esc` (plotly renders a subset of HTML in labels) and the figure JSON through
plotly, which writes `<` and `/` as \\u escapes: a function name cannot close the page's script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from tracer.analyzer.model import SegmentJson, StacksJson
from tracer.report import model
from tracer.report.charts import Chart
from tracer.report.page import esc

#: frames holding less than this share of the samples are left out (their parent keeps them)
MIN_SHARE = 0.001
#: at most this many frames in the icicle
MAX_NODES = 4000
#: component colours, assigned in order of on-CPU samples (the rest share the last)
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac")

HELP = (
    "Where the recorded processes spent their CPU inside the analysis window, from on-CPU "
    "stack samples. Flame graph (icicle): the top bar is every sample, each bar below it a "
    "frame called from the one above, as wide as the samples it was on the stack for; click a "
    "frame to zoom, click the top bar to zoom out. The first level is the process; the menu "
    "above it shows one critical-path segment's stacks instead (its process, inside it). "
    "Below: a "
    "lane per process, its dominant component per time bucket on the timeline's time axis. "
    "`k3sprof stacks TRACE` prints the same stacks folded, for flamegraph.pl or speedscope."
)


def icicle_nodes(folded: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Folded stacks -> icicle nodes {ids, labels, parents, values} (values: samples, the
    parent's value the sum over its subtree: plotly's branchvalues="total")."""
    total = sum(int(n) for _, n in folded)
    value: dict[tuple[str, ...], int] = {}
    for stack, n in folded:
        frames = tuple(str(stack).split(";"))
        for d in range(1, len(frames) + 1):
            value[frames[:d]] = value.get(frames[:d], 0) + int(n)
    keep = sorted((p for p, v in value.items() if v >= MIN_SHARE * total),
                  key=lambda p: (len(p), -value[p], p))[:MAX_NODES]
    ids_of: dict[tuple[str, ...], str] = {(): "all"}
    out: dict[str, list[Any]] = {"ids": ["all"], "labels": [f"all ({total} samples)"],
                                 "parents": [""], "values": [total]}
    for p in keep:
        parent = ids_of.get(p[:-1])
        if parent is None:  # its parent was cut: so is it
            continue
        ids_of[p] = f"n{len(ids_of)}"
        out["ids"].append(ids_of[p])
        out["labels"].append(esc(p[-1]))
        out["parents"].append(parent)
        out["values"].append(value[p])
    return out


def flame_figure(st: StacksJson | None, path: Sequence[SegmentJson] = ()) -> Chart:
    """The icicle of the window's folded stacks; with per-segment stacks (`stacks.segments`),
    a menu switches it to one critical-path segment's (that segment's process, inside it)."""
    folded = st["folded"] if st is not None else []
    if st is None or not folded:
        return Chart("fig-flame", empty="No on-CPU stack samples in the analysis window.")
    n = icicle_nodes(folded)
    fig = go.Figure(
        go.Icicle(
            ids=n["ids"],
            labels=n["labels"],
            parents=n["parents"],
            values=n["values"],
            branchvalues="total",
            tiling={"orientation": "v"},
            maxdepth=12,
            hovertemplate="%{label}<br>%{value} samples (%{percentRoot:.1%} of all)"
            "<extra></extra>",
        )
    )
    left = st["folded_left_out"]
    note = f" ({left} samples of rarer stacks not drawn)" if left else ""
    extra: dict[str, Any] = {}
    buttons = [_button("the analysis window", n)]
    for seg in st["segments"]:
        i = seg["segment"]
        if not seg["folded"] or i >= len(path):
            continue
        p = path[i]
        what = f"#{i} {p['kind']} {p['comm'] or '?'}[{p['pid']}] " \
               f"{p['duration_ns'] / 1e6:,.1f} ms"
        buttons.append(_button(what, icicle_nodes(seg["folded"])))
    if len(buttons) > 1:
        extra["updatemenus"] = [{"type": "dropdown", "x": 0, "xanchor": "left", "y": 1.0,
                                 "yanchor": "bottom", "buttons": buttons,
                                 "showactive": True}]
    return Chart("fig-flame", fig, height=620,
                 layout={"margin": {"l": 10, "r": 10, "t": 60, "b": 10},
                         "title": {"text": esc(f"on-CPU samples{note}"), "font": {"size": 12},
                                   "x": 0.5}, **extra})


def _button(label: str, n: Mapping[str, list[Any]]) -> dict[str, Any]:
    """A menu entry that swaps the icicle's nodes for `n` (plotly's restyle)."""
    return {"label": esc(label), "method": "restyle",
            "args": [{"ids": [n["ids"]], "labels": [n["labels"]], "parents": [n["parents"]],
                      "values": [n["values"]], "level": ["all"]}]}


def component_colors(st: StacksJson) -> dict[str, str]:
    names = [r["component"] for r in st["by_component"]]
    return {c: PALETTE[min(i, len(PALETTE) - 1)] for i, c in enumerate(names)}


def lanes_figure(st: StacksJson | None, f: model.Facts) -> Chart:
    """One lane per process with samples: runs of its dominant component, on the timeline's
    time axis (Chart.window_title)."""
    t0 = f["start_ns"]
    section = st["lanes"] if st is not None else None
    lanes = section["lanes"] if section is not None else []
    if st is None or section is None or not lanes:
        return Chart("fig-component-lanes", empty="No on-CPU samples to draw lanes from.")
    colors = component_colors(st)
    names = [f"{esc(r['comm'] or '?')} [{r['pid']}]" for r in lanes]
    comps = sorted({c for r in lanes for c in r["component"]},
                   key=lambda c: (list(colors).index(c) if c in colors else len(colors), c))
    fig = go.Figure()
    for comp in comps:
        ys: list[str] = []
        base: list[float] = []
        xs: list[float] = []
        hover: list[str] = []
        for name, r in zip(names, lanes):
            for a, b, c, k in zip(r["start_ns"], r["end_ns"], r["component"], r["samples"]):
                if c != comp:
                    continue
                ys.append(name)
                base.append((int(a) - t0) / 1e9)
                xs.append((int(b) - int(a)) / 1e9)
                hover.append(f"+{(int(a) - t0) / 1e9:.3f} s, {(int(b) - int(a)) / 1e6:.1f} ms, "
                             f"{int(k)} samples")
        fig.add_trace(
            go.Bar(
                name=esc(comp),
                orientation="h",
                y=ys,
                base=base,
                x=xs,
                marker={"color": colors.get(comp, PALETTE[-1]), "line": {"width": 0}},
                customdata=hover,
                hovertemplate=f"<b>%{{y}}</b><br>{esc(comp)}: %{{customdata}}<extra></extra>",
            )
        )
    bucket = section["bucket_ns"]
    return Chart(
        "fig-component-lanes",
        fig,
        height=90 + 26 * len(lanes),
        window_title="seconds since recording started: dominant component per "
        f"{bucket / 1e6:.1f} ms",
        rows=names,
        layout={"barmode": "overlay", "bargap": 0.25},
    )


__all__ = ["HELP", "flame_figure", "icicle_nodes", "lanes_figure"]
