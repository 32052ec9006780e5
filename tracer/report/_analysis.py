"""An Analysis for a trace directory, or read back from a stored ``analyze --json`` file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tracer._errors import TraceError
from tracer.analyzer import Analysis, Options, load_and_analyze


def load_result(path: Path, options: Options) -> tuple[str, Analysis]:
    """(run name, analysis) of a trace directory (analyzed with options) or of an
    ``analyze --json`` file (used as written: redacted when it was made unless --no-redact)."""
    name = os.path.basename(os.path.normpath(str(path)))
    if not path.is_file():
        return name, load_and_analyze(path, options)
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
    return name.removesuffix(".json"), Analysis.from_json(data)
