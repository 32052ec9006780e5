"""Parsed lines -> LOG table rows (shared by the live sources and the offline ingest)."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from tracer import schema
from tracer.context.logs.parse import ParsedLine


class LogRows:
    """Accumulates LOG rows of one source; continuation lines inherit their entry's fields."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._cols: dict[str, list[Any]] = {n: [] for n in schema.LOG.names}
        self._entry: ParsedLine | None = None

    def __len__(self) -> int:
        return len(self._cols["raw"])

    def add(self, raw: str, parsed: ParsedLine, ts_ns: int | None, time_from: str) -> None:
        level, component, pid = parsed.level, parsed.component, parsed.pid
        if parsed.continuation and self._entry is not None:
            entry = self._entry
            level = level or entry.level
            component = component or entry.component
            pid = pid if pid is not None else entry.pid
        elif not parsed.continuation:
            self._entry = parsed
        c = self._cols
        c["ts_ns"].append(ts_ns if ts_ns is None or ts_ns >= 0 else None)
        c["source"].append(self.source)
        c["level"].append(level)
        c["component"].append(component)
        c["message"].append(parsed.message)
        c["pid"].append(pid)
        c["raw"].append(raw)
        c["time_from"].append(time_from)

    def take(self) -> pa.Table | None:
        """The rows added since the last take (None if none)."""
        if not self._cols["raw"]:
            return None
        cols, self._cols = self._cols, {n: [] for n in schema.LOG.names}
        return pa.Table.from_pydict(cols, schema=schema.LOG)


def realtime_offset_ns() -> int:
    """realtime - monotonic now (what the recorder stores as meta realtime_offset_ns)."""
    a = time.monotonic_ns()
    r = time.time_ns()
    b = time.monotonic_ns()
    return r - (a + b) // 2
