"""Getting the analyzer's result for a trace, or from a stored ``analyze --json`` file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tracer._errors import TraceError
from tracer.analyzer import analyze
from tracer.schema import load


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
    return name, analyze(
        trace, profile=profile, start=start, end=end, redact=redact, scope=scope
    )
