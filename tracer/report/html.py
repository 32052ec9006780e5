"""The shareable HTML report: one self-contained, offline, deterministic file.

Built like memray's reporters: ``HtmlReport.from_analysis()`` turns the typed Analysis into a
JSON payload (tables, headline, facts: tracer/report/tables.py) and plotly figures
(tracer/report/chart_*.py); ``render()`` only serializes them through the Jinja templates in
tracer/report/templates/ (autoescaped: every string the report did not write itself is escaped
by the template engine, not by hand). plotly.js is inlined exactly once; each figure is
``fig.to_html(full_html=False, include_plotlyjs=False)`` with a fixed div id; the payload goes in
through ``|tojson`` (sorted keys; ``<``, ``>``, ``&``, ``'`` escaped), and a few lines of JS build
the fact header, warnings and tables from it with ``textContent`` (never innerHTML), so no
recorded string can become markup.

Same trace + same analysis -> same bytes: no wall clock, no random ids, sorted keys, rounded
floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

from tracer import __version__
from tracer.analyzer.model import Analysis
from tracer.report import chart_events, chart_sched, chart_timeline, model, tables
from tracer.report._output import write_output
from tracer.report.charts import STATES_MIN_SHARE, Chart, figures_html
from tracer.report.page import TableDict
from tracer.report.templating import render_page
from tracer.report.whatif import HELP as WHATIF_HELP
from tracer.report.whatif import whatif_tables

OUTPUT_SUFFIX = ".html"

#: the page's sections in order, for its navigation bar: (anchor, title)
NAV = (
    ("timeline", "Timeline"),
    ("sched", "Scheduler"),
    ("stacks", "Stacks"),
    ("critical-path", "Critical path"),
    ("whatif", "What if"),
    ("connects", "Connects"),
    ("waits", "Waits"),
    ("phases", "Phases"),
    ("events", "Execs & modules"),
    ("milestones", "Milestones"),
)


class ReportPayload(TypedDict):
    title: str
    tracer_version: str
    headline: list[str]
    facts: list[list[str]]
    warnings: list[str]
    tables: dict[str, TableDict]
    analysis: dict[str, Any]


class HtmlReport:
    """The HTML report: build with from_analysis(), write with render()."""

    output_suffix = OUTPUT_SUFFIX

    def __init__(self, payload: ReportPayload, figures: dict[str, str],
                 bucket_ns: int = 10_000_000) -> None:
        self.payload = payload
        #: section anchor -> the figure html of that section (sections without one: none)
        self.figures = figures
        #: the busy-cores chart's bucket (said in the scheduler section's help)
        self.bucket_ns = bucket_ns

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
        window = model.analysis_window(f)
        procs = model.processes(a)
        segs = model.segments(a)
        waits = model.waits(a)
        phases = model.phases(a)
        miles = model.milestones(a)
        comp = model.composition(segs)
        spans = [model.wait_span(w) for w in waits]
        by_exe = model.path_summary(a, "executable")
        by_component = model.path_summary(a, "component")
        warnings = model.warnings(f)
        busy = model.busy_cores(a)
        v = a.views
        # every row is converted above (model), then drawn below (tables, charts), and the
        # charts are laid out last, all in one place (charts.figures_html)

        payload = ReportPayload(
            title=f"k3sprof report: {f['name']}",
            tracer_version=__version__,
            headline=tables.headline(f, segs, waits, comp),
            facts=tables.facts_rows(f),
            warnings=warnings,
            tables={
                "critical_path": tables.critical_path_table(segs, f),
                "composition": tables.composition_table(comp, f),
                "path_by_executable": tables.summary_table(by_exe, "executable"),
                "path_by_component": tables.summary_table(by_component, "component"),
                "waits": tables.waits_table(waits, spans, t0),
                "phases": tables.phases_table(phases, t0),
                "milestones": tables.milestones_table(miles, t0),
                **tables.module_loads_tables(a, t0),
                **tables.blockers_tables(a),
                **whatif_tables(a),
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
        # section anchor -> its charts, top to bottom
        charts: dict[str, list[Chart]] = {
            "timeline": [chart_timeline.timeline_figure(procs, segs, f, v.active_pids, window)],
            "connects": [chart_events.connects_figure(v.connects, v.listens, waits, t0)],
            "events": [chart_events.events_figure(miles, v.module_loads, v.execs, t0)],
        }
        if busy is not None or any("states" in s for s in segs):
            # scheduler data only: without it the page has no scheduler section at all
            charts["sched"] = [
                chart_sched.busy_cores_figure(busy, f),
                chart_sched.state_lanes_figure(a.state_lanes, f),
                chart_sched.segment_states_figure(segs, f),
            ]
        st = a.stacks
        if st is not None:  # stack tables (schema 1.3) only: else no stacks section at all
            from tracer.report import flame

            charts["stacks"] = [flame.flame_figure(st, a.critical_path), flame.lanes_figure(st, f)]
            payload["analysis"]["stack_problems"] = list(st["problems"])
        figures = figures_html(charts, window, t0)
        return cls(payload, figures, busy["bucket_ns"] if busy else 10_000_000)

    def render_bytes(self) -> bytes:
        optional = {"sched": "sched" in self.figures, "stacks": "stacks" in self.figures,
                    "whatif": "whatif" in self.payload["tables"]}
        nav = [(anchor, title) for anchor, title in NAV if optional.get(anchor, True)]
        return render_page(
            "report.html",
            heading="k3sprof report",
            payload=self.payload,
            figures=self.figures,
            tables=self.payload["tables"],
            nav=nav,
            bucket_ms=self.bucket_ns / 1e6,
            states_min_pct=100 * STATES_MIN_SHARE,
            whatif_help=WHATIF_HELP,
            stack_problems=self.payload["analysis"].get("stack_problems") or [],
            stacks_help=_stacks_help(),
        ).encode("utf-8")

    def render(self, path: Path, *, force: bool = False) -> None:
        write_output(path, self.render_bytes(), force)


def _stacks_help() -> str:
    from tracer.report.flame import HELP

    return HELP
