"""Context recorded next to the BPF events, on the same clock: cgroups, netlink, logs.

Each source is self-contained and knows nothing about the recorder. The recorder drives any
number of them through :class:`ContextSource`:

    src.start()                 # right after the probes are live
    t = src.drain()             # rows since the last drain, every <= 1 s, recorder's main thread
    src.stop(); t = src.drain() # at the end: stop, then one last drain

Every row's ``ts_ns`` is CLOCK_MONOTONIC nanoseconds (``time.monotonic_ns()``, the clock
``bpf_ktime_get_ns()`` reads), so context rows line up with BPF events without conversion.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class ContextSource(Protocol):
    """A source of context rows for one trace table (a name in ``tracer.schema.TABLES``)."""

    table: str

    def start(self) -> None:
        """Begin collecting (called right after the probes are live)."""

    def drain(self) -> pa.Table | None:
        """Rows collected since the last drain (schema ``TABLES[table]``), or None if none."""

    def stop(self) -> None:
        """Stop collecting; the recorder then calls drain() one last time."""


__all__ = ["ContextSource"]
