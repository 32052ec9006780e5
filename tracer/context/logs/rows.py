"""Parsed lines -> LOG table rows (shared by the live sources and the offline ingest), and the
rule that decides when a line's own timestamp is used instead of the time it was received."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from tracer import schema
from tracer.context.logs.parse import ParsedLine

#: A line's own stamp is used only when finer than this: a millisecond stamp (zap's default ISO
#: time) truncates by up to 1 ms; arrival is late by a median 63-69 us here (docs/context.md).
OWN_TIME_MAX_RESOLUTION_NS = 1_000_000
#: How long before its arrival a line may have been stamped and still be believed. A line is
#: stamped before it is written and read, so own <= arrival; how much earlier is the writer's
#: buffering plus our reader's scheduling delay: 4 us - 2.4 ms measured for etcd and containerd
#: under the recorder (docs/context.md), tens of ms when the recorder's own batch work holds
#: the reader off on a loaded machine. 1 s covers all of that with a wide margin, and is still
#: far below what makes a stamp wrong rather than late: a time read in the wrong zone (a
#: multiple of 15 min), a wrong year guess, or a wall-clock step of a second or more (chrony's
#: default step threshold).
OWN_TIME_MAX_EARLY_NS = 1_000_000_000


def own_time_ns(parsed: ParsedLine, received_ns: int | None, offset_ns: int) -> int | None:
    """The line's own timestamp on CLOCK_MONOTONIC, when it can be trusted over received_ns.

    Trusted when: the line has a wall-clock stamp of its own finer than 1 ms
    (``resolution_ns < OWN_TIME_MAX_RESOLUTION_NS``), and, converted with the trace's realtime
    offset (realtime - monotonic), it lies in [received - OWN_TIME_MAX_EARLY_NS,
    received + its resolution]: not after the line was received (a stamp is truncated, so
    the true moment is at most one step later than written) and not implausibly earlier.
    The result is never after received_ns. None: keep the received time.
    """
    if received_ns is None or parsed.realtime_ns is None or parsed.resolution_ns is None:
        return None
    if parsed.resolution_ns >= OWN_TIME_MAX_RESOLUTION_NS:
        return None
    own = parsed.realtime_ns - offset_ns
    if own < received_ns - OWN_TIME_MAX_EARLY_NS or own > received_ns + parsed.resolution_ns:
        return None
    return min(own, received_ns)


class LogRows:
    """Accumulates LOG rows of one source; continuation lines inherit their entry's fields.

    default_pid: the pid of rows whose line names none (the recorded command's, for its output).
    """

    def __init__(self, source: str, default_pid: int | None = None) -> None:
        self.source = source
        self.default_pid = default_pid
        self._cols: dict[str, list[Any]] = {n: [] for n in schema.LOG.names}
        self._entry: ParsedLine | None = None
        #: the time of the current entry when it came from its own stamp (for its continuations)
        self._entry_own_ns: int | None = None

    def __len__(self) -> int:
        return len(self._cols["raw"])

    def add_received(self, raw: str, parsed: ParsedLine, received_ns: int | None,
                     received_from: str, offset_ns: int) -> None:
        """A line of a live source, received at received_ns (``received_from`` says how that
        time was taken): placed at its own stamp when :func:`own_time_ns` trusts it
        (``time_from=line-realtime``); a continuation of such an entry (a stack frame, no stamp)
        at its entry's time (``previous-line``); otherwise at received_ns."""
        own = own_time_ns(parsed, received_ns, offset_ns)
        ts: int | None
        if own is not None:
            ts, time_from = own, "line-realtime"
        elif parsed.continuation and self._entry_own_ns is not None:
            ts, time_from = self._entry_own_ns, "previous-line"
        else:
            ts, time_from = received_ns, received_from
        self.add(raw, parsed, ts, time_from, received_ns)
        if not parsed.continuation:
            self._entry_own_ns = own

    def add(self, raw: str, parsed: ParsedLine, ts_ns: int | None, time_from: str,
            received_ns: int | None = None) -> None:
        level, component, pid = parsed.level, parsed.component, parsed.pid
        if parsed.continuation and self._entry is not None:
            entry = self._entry
            level = level or entry.level
            component = component or entry.component
            pid = pid if pid is not None else entry.pid
        elif not parsed.continuation:
            self._entry = parsed
        if pid is None:
            pid = self.default_pid
        c = self._cols
        c["ts_ns"].append(ts_ns if ts_ns is None or ts_ns >= 0 else None)
        c["source"].append(self.source)
        c["level"].append(level)
        c["component"].append(component)
        c["message"].append(parsed.message)
        c["pid"].append(pid)
        c["raw"].append(raw)
        c["time_from"].append(time_from)
        c["received_ns"].append(received_ns if received_ns is None or received_ns >= 0 else None)

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
