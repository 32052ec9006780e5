"""Output file naming and writing shared by report, compare and export."""

from __future__ import annotations

import os
from pathlib import Path

from tracer._errors import TracerError, UsageError

REPORTS_DIR = Path("reports")


def default_output(trace_path: str | os.PathLike[str], suffix: str) -> Path:
    """reports/<trace name><suffix>, the trace name being its directory's basename."""
    name = os.path.basename(os.path.normpath(os.fspath(trace_path))) or "trace"
    return REPORTS_DIR / f"{name}{suffix}"


def check_output(path: Path, force: bool) -> None:
    """Refuse to clobber an existing output (checked before any work is done)."""
    if path.is_dir():
        raise UsageError(f"{path}: is a directory (give a file name with -o)")
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists (use --force to overwrite)")


def write_output(path: Path, data: bytes, force: bool) -> None:
    """Write atomically (tmp + rename): a reader never sees half a report."""
    check_output(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        raise TracerError(f"{path}: cannot write ({e.strerror or e})") from None
