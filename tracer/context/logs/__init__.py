"""Log lines on the trace clock: parsing, command output, journald, and files captured elsewhere.

Formats: see :mod:`~tracer.context.logs.parse`.

Every row is one physical line; ``ts_ns`` is CLOCK_MONOTONIC. ``time_from`` says where the time
came from: ``arrival`` (stamped when the line reached the recorder), ``journal-monotonic``
(journald's own monotonic stamp, same boot: exact), ``journal-realtime`` and ``line-realtime``
(a wall-clock stamp converted with the trace's realtime offset: for live lines only when the
stamp is sub-millisecond and consistent with receipt, :func:`own_time_ns`),
``previous-line`` / ``next-line`` (a line with no time of its own, e.g. a stack frame, placed at its
neighbour's time) and ``none``. ``received_ns`` keeps a live line's receipt time. Lines of the
recorded command's output carry the command's pid unless they name their own.

One module per seam: :mod:`~tracer.context.logs.parse` (one line -> ParsedLine),
:mod:`~tracer.context.logs.rows` (ParsedLines -> LOG rows), :mod:`~tracer.context.logs.live`
(the recorder's sources: command output, journald) and :mod:`~tracer.context.logs.offline`
(``k3sprof ingest-log``). The names below are the package's API.
"""

from tracer.context.logs.live import (
    MAX_LINE_BYTES,
    CommandOutputSource,
    JournalSource,
    journal_row,
)
from tracer.context.logs.offline import IngestResult, ingest, rows_from_lines
from tracer.context.logs.parse import ParsedLine, parse_line, parse_timezone
from tracer.context.logs.rows import LogRows, own_time_ns, realtime_offset_ns

__all__ = [
    "MAX_LINE_BYTES",
    "CommandOutputSource",
    "IngestResult",
    "JournalSource",
    "LogRows",
    "ParsedLine",
    "ingest",
    "journal_row",
    "own_time_ns",
    "parse_line",
    "parse_timezone",
    "realtime_offset_ns",
    "rows_from_lines",
]
