"""Every output of one Analysis, written from it (what `demo` and `boot run` write next to a
trace): analysis JSON, analysis text, HTML report. One analysis, no subprocess, no second load."""

from __future__ import annotations

import json
from pathlib import Path

from tracer.analyzer.model import Analysis
from tracer.analyzer.text import not_reached, render
from tracer.report._output import write_output


def analysis_json(a: Analysis, indent: int | None = None) -> str:
    """`analyze --json`: sorted keys, compact unless indent is given (json's C encoder only runs
    without indent, which costs 10x on 1M events)."""
    if indent is None:
        return json.dumps(a.to_json(), sort_keys=True, separators=(",", ":"))
    return json.dumps(a.to_json(), indent=indent, sort_keys=True, default=str)


def analysis_text(a: Analysis) -> str:
    """`analyze` text, plus the line it prints on stderr when a milestone was not reached."""
    why = not_reached(a)
    return render(a) + (f"k3sprof: {why}\n" if why else "")


def write_outputs(
    a: Analysis,
    *,
    json_path: Path | None = None,
    text_path: Path | None = None,
    html_path: Path | None = None,
    json_indent: int | None = None,
) -> None:
    """Write the outputs asked for, overwriting (atomic: tmp + rename)."""
    if json_path is not None:
        write_output(json_path, analysis_json(a, json_indent).encode(), force=True)
    if text_path is not None:
        write_output(text_path, analysis_text(a).encode(), force=True)
    if html_path is not None:
        from tracer.report.html import HtmlReport

        HtmlReport.from_analysis(a).render(html_path, force=True)
