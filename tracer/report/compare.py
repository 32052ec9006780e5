"""Two runs side by side (e.g. k3s v1.32.3 vs v1.32.4): phases and critical-path composition
with absolute and % deltas, and what appeared on / disappeared from the critical path.

Works on analyzer results (``analyze --json`` output or ``tracer.analyzer.analyze``), so stored
lab results compare without their traces. Negative deltas mean B is faster.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import TypedDict

import plotly.graph_objects as go
from markupsafe import Markup

from tracer import units
from tracer.analyzer.model import Analysis
from tracer.report import model, page
from tracer.report._output import write_output
from tracer.report.page import TableDict
from tracer.report.templating import render_page


class RunSummary(TypedDict):
    name: str
    k3s_version: str | None
    total_ns: int | None
    end_reached: bool
    profile: str


class Delta(TypedDict):
    name: str
    a_ns: int | None
    b_ns: int | None
    delta_ns: int | None
    delta_pct: float | None


class PathItem(TypedDict):
    item: str
    a_ns: int | None
    b_ns: int | None
    status: str  # "both" | "appeared" | "disappeared"


class Comparison(TypedDict):
    a: RunSummary
    b: RunSummary
    total: Delta
    phases: list[Delta]
    composition: list[Delta]
    critical_path_items: list[PathItem]


def _delta(name: str, a: int | None, b: int | None) -> Delta:
    d = None if a is None or b is None else b - a
    pct = None if d is None or not a else round(100 * d / a, 1)
    return Delta(name=name, a_ns=a, b_ns=b, delta_ns=d, delta_pct=pct)


_PID = re.compile(r"\s*\[\d+\]|\bpid \d+\s*")


def _item_key(s: model.SegmentRow) -> str:
    """A critical-path item named so that it matches across runs (pids differ between boots)."""
    what = _PID.sub("", s["label"] or s["comm"] or "?").strip()
    return f"{s['kind']}: {what}"


def _summary(name: str, r: Analysis) -> RunSummary:
    return RunSummary(
        name=name,
        k3s_version=r.trace["k3s_version"] or None,
        total_ns=r.total_ns,
        end_reached=r.end_reached,
        profile=r.profile,
    )


def compare(a: Analysis, b: Analysis, *, name_a: str = "A", name_b: str = "B") -> Comparison:
    """Compare two analyses (each redacted as it was made)."""
    sa, sb = _summary(name_a, a), _summary(name_b, b)
    pa_ = {p["name"]: p["duration_ns"] for p in model.phases(a)}
    pb_ = {p["name"]: p["duration_ns"] for p in model.phases(b)}
    phase_names = list(pa_) + [n for n in pb_ if n not in pa_]
    segs_a, segs_b = model.segments(a), model.segments(b)
    ca, cb = model.composition(segs_a), model.composition(segs_b)
    kinds = [k for k in model.SEGMENT_KINDS if k in ca or k in cb] + sorted(
        (set(ca) | set(cb)) - set(model.SEGMENT_KINDS)
    )
    ia: dict[str, int] = {}
    ib: dict[str, int] = {}
    for segs, acc in ((segs_a, ia), (segs_b, ib)):
        for s in segs:
            k = _item_key(s)
            acc[k] = acc.get(k, 0) + s["end_ns"] - s["start_ns"]
    items = [
        PathItem(
            item=k,
            a_ns=ia.get(k),
            b_ns=ib.get(k),
            status="both" if k in ia and k in ib else ("disappeared" if k in ia else "appeared"),
        )
        for k in sorted(set(ia) | set(ib), key=lambda k: (-max(ia.get(k, 0), ib.get(k, 0)), k))
    ]
    return Comparison(
        a=sa,
        b=sb,
        total=_delta("critical path total", sa["total_ns"], sb["total_ns"]),
        phases=[_delta(n, pa_.get(n), pb_.get(n)) for n in phase_names],
        composition=[_delta(k, ca.get(k), cb.get(k)) for k in kinds],
        critical_path_items=items,
    )


def _version(run: RunSummary) -> str:
    return f"  (k3s {run['k3s_version']})" if run.get("k3s_version") else ""


def _pct(p: float | None) -> str:
    return "–" if p is None else f"{p:+.1f}%"


def _delta_rows(rows: list[Delta]) -> list[list[str]]:
    return [
        [
            d["name"],
            units.fmt_ns(d["a_ns"]),
            units.fmt_ns(d["b_ns"]),
            "–"
            if d["delta_ns"] is None
            else ("+" if d["delta_ns"] > 0 else "") + units.fmt_ns(d["delta_ns"]),
            _pct(d["delta_pct"]),
        ]
        for d in rows
    ]


def render_text(c: Comparison) -> str:
    """The comparison as aligned text tables for a terminal."""
    a, b = c["a"]["name"], c["b"]["name"]
    out = [f"A = {a}{_version(c['a'])}", f"B = {b}{_version(c['b'])}", ""]

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        out.append(title)
        if not rows:
            out.extend(["  (none)", ""])
            return
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            out.append(
                "  "
                + "  ".join(
                    x.ljust(widths[i]) if i == 0 else x.rjust(widths[i]) for i, x in enumerate(r)
                )
            )
        out.append("")

    hdr = ["", "A", "B", "Δ", "Δ%"]
    table("Total", hdr, _delta_rows([c["total"]]))
    table("Phases", ["phase", "A", "B", "Δ", "Δ%"], _delta_rows(c["phases"]))
    table("Critical path by kind", ["kind", "A", "B", "Δ", "Δ%"], _delta_rows(c["composition"]))
    changed = [i for i in c["critical_path_items"] if i["status"] != "both"]
    table(
        "Appeared on / disappeared from the critical path",
        ["item", "status", "A", "B"],
        [
            [i["item"], i["status"], units.fmt_ns(i["a_ns"]), units.fmt_ns(i["b_ns"])]
            for i in changed
        ],
    )
    for run in (c["a"], c["b"]):
        if not run["end_reached"]:
            out.append(
                f"WARNING: {run['name']}: end milestone not reached; its critical path is empty"
            )
    return "\n".join(out).rstrip() + "\n"


def render_json(c: Comparison) -> str:
    return json.dumps(c, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _tables(c: Comparison) -> dict[str, TableDict]:
    def t(cols: list[str], align: str, rows: list[list[str]]) -> TableDict:
        return TableDict(columns=cols, align=align, rows=rows, note="")

    return {
        "total": t(["", "A", "B", "Δ", "Δ%"], "lrrrr", _delta_rows([c["total"]])),
        "phases": t(["phase", "A", "B", "Δ", "Δ%"], "lrrrr", _delta_rows(c["phases"])),
        "composition": t(["kind", "A", "B", "Δ", "Δ%"], "lrrrr", _delta_rows(c["composition"])),
        "items": t(
            ["critical-path item", "status", "A", "B"],
            "llrr",
            [
                [i["item"], i["status"], units.fmt_ns(i["a_ns"]), units.fmt_ns(i["b_ns"])]
                for i in c["critical_path_items"]
            ],
        ),
    }


def _bars(c: Comparison, rows: list[Delta], div_id: str, title: str) -> str:
    names = [html.escape(d["name"]) for d in rows]
    fig = go.Figure()
    for side, key, color in (("a", "a_ns", "#9ecae9"), ("b", "b_ns", "#1f4e9c")):
        vals = [None if d[key] is None else round(d[key] / 1e9, 6) for d in rows]  # type: ignore[literal-required]
        fig.add_trace(
            go.Bar(
                name=html.escape(f"{side.upper()}: {c[side]['name']}"),  # type: ignore[literal-required]
                orientation="h",
                y=names,
                x=vals,
                marker={"color": color},
                hovertemplate="%{y}: %{x:.3f} s<extra></extra>",
            )
        )
    fig.update_layout(
        page.layout(
            110 + 48 * max(1, len(rows)),
            barmode="group",
            title={"text": html.escape(title)},
            xaxis={"title": {"text": "seconds"}},
            yaxis={"autorange": "reversed", "automargin": True},
        )
    )
    return page.figure_html(fig, div_id)


def render_html(c: Comparison) -> str:
    """One self-contained page: bar charts of phases and composition plus the delta tables."""
    data = {
        "title": f"k3sprof compare: {c['a']['name']} vs {c['b']['name']}",
        "tables": _tables(c),
        "comparison": c,
        "facts": [
            ["A", c["a"]["name"] + _version(c["a"])],
            ["B", c["b"]["name"] + _version(c["b"])],
        ],
        "warnings": [
            f"{r['name']}: end milestone not reached; its critical path is empty"
            for r in (c["a"], c["b"])
            if not r["end_reached"]
        ],
        "headline": [
            f"Critical path: {units.fmt_ns(c['total']['a_ns'])} → "
            f"{units.fmt_ns(c['total']['b_ns'])} ({_pct(c['total']['delta_pct'])})"
        ],
    }

    box = page.table_box
    return render_page("compare.html", heading="k3sprof compare", payload=data, figures={},
                       footer="negative Δ: B is faster", sections=[
        ("Total", Markup(box("total"))),
        ("Phases", Markup(_bars(c, c["phases"], "fig-phases", "Phases") + box("phases"))),
        ("Critical path by kind",
         Markup(_bars(c, c["composition"], "fig-composition", "Critical path by kind")
                + box("composition"))),
        ("Critical-path items (appeared / disappeared / in both)", Markup(box("items"))),
    ])


def write_html(c: Comparison, path: Path, *, force: bool = False) -> None:
    write_output(path, render_html(c).encode("utf-8"), force)
