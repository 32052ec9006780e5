"""Every output of one Analysis, written from it (what `demo` and `boot run` write next to a
trace): analysis JSON, analysis text, HTML report. One analysis, no subprocess, no second load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracer.analyzer.model import Analysis
from tracer.report._output import write_output
from tracer.report.text import not_reached, render


def analysis_json(a: Analysis, indent: int | None = None) -> str:
    """`analyze --json`: sorted keys, compact unless indent is given (json's C encoder only runs
    without indent, which costs 10x on 1M events)."""
    if indent is None:
        return "".join(analysis_json_chunks(a))
    return json.dumps(a.to_json(), indent=indent, sort_keys=True, default=str)


def analysis_json_chunks(a: Analysis, rows: int = 2000) -> Iterator[str]:
    """The compact `analyze --json` text in pieces, byte for byte what one json.dumps gives:
    printed piece by piece, a 1M-event analysis (80 MB of JSON) never holds the whole text
    (and its encoded copy) in memory at once. Long lists go `rows` elements at a time."""

    def dumps(v: Any) -> str:
        return json.dumps(v, sort_keys=True, separators=(",", ":"))

    doc = a.to_json()
    yield "{"
    for n, key in enumerate(sorted(doc)):
        value = doc[key]
        yield ("," if n else "") + dumps(key) + ":"
        if isinstance(value, list) and len(value) > rows:
            yield "["
            for i in range(0, len(value), rows):
                yield ("," if i else "") + dumps(value[i : i + rows])[1:-1]
            yield "]"
        else:
            yield dumps(value)
    yield "}"


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
