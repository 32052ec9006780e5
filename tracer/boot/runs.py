"""The runs directory: one directory per recorded boot, named so runs sort, and rotation."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer._errors import PrivilegeError

RUN_FILE = "run.json"
TRACE_SUBDIR = "trace"
REPORT_FILE = "report.html"
ANALYSIS_FILE = "analysis.json"
#: <seq>-<UTC time>-<boot id>: the sequence number orders runs, because early in boot the
#: realtime clock may still be wrong (VMs without an RTC, before NTP), so times do not.
RUN_NAME = re.compile(r"^(?P<seq>\d{4,})-(?P<time>\d{8}T\d{6}Z)-(?P<boot_id>[0-9a-f]{32})$")


def ensure_output_dir(path: Path) -> None:
    """Create the output directory root-only (0700); tighten it if it exists looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


@dataclass
class RunInfo:
    """One recorded boot in the output directory."""

    name: str
    path: Path
    seq: int
    boot_id: str
    started_utc: str
    has_trace: bool
    has_report: bool
    result: dict[str, Any] = field(default_factory=dict)


def list_runs(output_dir: Path) -> list[RunInfo]:
    """Runs in the output directory, oldest first; anything not named like a run is ignored."""
    runs = []
    try:
        entries = list(output_dir.iterdir())
    except FileNotFoundError:
        return []
    except PermissionError:
        raise PrivilegeError(
            f"{output_dir}: permission denied (boot traces are root-only: use sudo)"
        ) from None
    for p in entries:
        m = RUN_NAME.match(p.name)
        if not m or not p.is_dir() or p.is_symlink():
            continue
        try:
            result = json.loads((p / RUN_FILE).read_text())
        except (OSError, ValueError):
            result = {}
        runs.append(
            RunInfo(
                p.name,
                p,
                int(m["seq"]),
                m["boot_id"],
                m["time"],
                (p / TRACE_SUBDIR / "meta.json").exists(),
                (p / REPORT_FILE).exists(),
                result if isinstance(result, dict) else {},
            )
        )
    return sorted(runs, key=lambda r: (r.seq, r.name))


def run_name(seq: int, boot_id: str, when: dt.datetime) -> str:
    """The directory name of run `seq`; boot_id in the journal form (tracer.host.boot_id)."""
    name = f"{seq:04d}-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{boot_id}"
    if not RUN_NAME.match(name):
        raise ValueError(f"bad run name {name!r} (boot id must be 32 hex digits)")
    return name


def new_run_dir(output_dir: Path, boot_id: str, when: dt.datetime) -> Path:
    """Create the next run directory (0700); the sequence number never repeats a kept one."""
    ensure_output_dir(output_dir)
    seq = max((r.seq for r in list_runs(output_dir)), default=0) + 1
    while True:
        path = output_dir / run_name(seq, boot_id, when)
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            seq += 1


def rotate(output_dir: Path, keep: int, *, current: Path | None = None) -> list[Path]:
    """Delete all but the newest `keep` runs (never `current`); returns what was deleted."""
    runs = list_runs(output_dir)
    doomed = [r.path for r in runs[: max(len(runs) - keep, 0)] if r.path != current]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def write_run_file(run_dir: Path, data: dict[str, Any]) -> None:
    """RUN/run.json, replaced atomically (status may read it while the run is going)."""
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, run_dir / RUN_FILE)
