"""The report's "what if" panel: the changes with the largest predicted gain on this trace.

Coz's question (where would a speedup matter?) asked of one startup: tracer.whatif.suggest
replays the analysis' wait-for graph with each candidate change (a shorter retry interval, a
helper gone or twice as fast, a step started beside the one before it) and keeps the five that
move the end most. Built from the Analysis alone, like every other part of the report.
"""

from __future__ import annotations

from tracer.analyzer.model import Analysis
from tracer.report.page import TableDict
from tracer.whatif import suggest

HELP = (
    "The changes with the largest predicted gain on this trace, each predicted by replaying the "
    "recorded wait-for graph with that one change (k3sprof whatif TRACE CHANGE shows the new "
    "critical path and what the trace could not model). A helper made faster only helps as much "
    "as the retry loop waiting for it notices: the prediction includes the loop's cadence. "
    "Work with slack (off the critical path) is never listed."
)


def whatif_tables(a: Analysis) -> dict[str, TableDict]:
    """{"whatif": table} when the path exists and some change predicts a gain; else {}."""
    if not a.end_reached or a.total_ns is None or not a.critical_path:
        return {}
    sugg = suggest(a)
    if not sugg:
        return {}
    rows = [[s.change, s.why, f"{s.gain_ns / 1e6:,.1f} ms",
             f"{100 * s.gain_ns / a.total_ns:.1f}%", f"{s.predicted_total_ns / 1e6:,.1f} ms"]
            for s in sugg]
    return {"whatif": TableDict(
        columns=["change", "what it means", "predicted gain", "of the total", "predicted total"],
        align="llrrr", rows=rows, note="")}
