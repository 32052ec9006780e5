"""Getting the analyzer's result for a trace, or from a stored ``analyze --json`` file."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from tracer._errors import TraceError, TracerError
from tracer.schema import Trace, load


def analyze_trace(
    trace: Trace,
    *,
    profile: str = "auto",
    start: str | None = None,
    end: str | None = None,
    redact: bool = True,
    scope: str = "auto",
) -> dict[str, Any]:
    """tracer.analyzer.analyze, imported lazily (the report package must import without it)."""
    # looked up at run time: the report package imports (and its tests run) without the analyzer
    analyze = getattr(importlib.import_module("tracer.analyzer"), "analyze", None)
    if analyze is None:
        raise TracerError("the analyzer is not available in this k3sprof build")
    result: dict[str, Any] = analyze(
        trace, profile=profile, start=start, end=end, redact=redact, scope=scope
    )
    return result


def load_result(
    path: Path,
    *,
    profile: str = "auto",
    start: str | None = None,
    end: str | None = None,
    redact: bool = True,
    scope: str = "auto",
) -> tuple[str, dict[str, Any]]:
    """(run name, analyzer result) from a trace directory or an ``analyze --json`` file."""
    name = os.path.basename(os.path.normpath(str(path)))
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise TraceError(f"{path}: cannot read ({e})") from None
        except json.JSONDecodeError as e:
            raise TraceError(
                f"{path}: not analyze --json output ({e.msg} at line {e.lineno})"
            ) from None
        if not isinstance(data, dict) or "critical_path" not in data:
            raise TraceError(f"{path}: not analyze --json output (no critical_path)")
        return name.removesuffix(".json"), data
    trace = load(path)
    return name, analyze_trace(
        trace, profile=profile, start=start, end=end, redact=redact, scope=scope
    )
