"""Logs captured elsewhere (`k3sprof ingest-log`): a file's lines into a finished trace's log table,
aligned to the trace clock through their own wall-clock times.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tracer import schema
from tracer._errors import TraceError, UsageError
from tracer.context.logs.parse import ParsedLine, parse_line
from tracer.context.logs.rows import LogRows


@dataclass(frozen=True)
class IngestResult:
    source: str
    rows: int  # lines added (one row per line; none dropped)
    own_time: int  # lines with a timestamp of their own
    neighbour_time: int  # lines placed at a neighbouring line's time
    no_time: int  # lines with no time at all (the file had no timestamps), or before boot
    unparsed: int  # lines in no known format (kept raw, level null)
    replaced: int  # rows of the same source from an earlier ingest, replaced


def rows_from_lines(lines: Iterable[str], source: str, *, offset_ns: int, reference_ns: int,
                    tz: tzinfo | None = None) -> tuple[pa.Table, IngestResult]:
    """Parse lines captured elsewhere into LOG rows aligned via their own wall-clock times.

    A line with no time of its own (a stack frame, an unknown line) takes the time of the line
    before it, or of the next timed line when it comes first.
    """
    rows = LogRows(source)
    own = neighbour = unparsed = 0
    last_ts: int | None = None
    waiting: list[tuple[str, ParsedLine]] = []  # untimed lines before the first timed one
    for text in lines:
        raw = text.rstrip("\r\n")
        p = parse_line(raw, reference_ns=reference_ns, tz=tz)
        if p.format == "raw" and not p.continuation:
            unparsed += 1
        if p.realtime_ns is not None:
            ts = p.realtime_ns - offset_ns
            for w_raw, w_p in waiting:
                rows.add(w_raw, w_p, ts, "next-line")
            neighbour += len(waiting)
            waiting.clear()
            rows.add(raw, p, ts, "line-realtime")
            own += 1
            last_ts = ts
        elif last_ts is not None:
            rows.add(raw, p, last_ts, "previous-line")
            neighbour += 1
        else:
            waiting.append((raw, p))
    for w_raw, w_p in waiting:
        rows.add(w_raw, w_p, None, "none")
    table = rows.take() or schema.LOG.empty_table()
    no_time = table.num_rows - pc.count(table["ts_ns"]).as_py()  # incl. times before boot
    return table, IngestResult(source, table.num_rows, own, neighbour, no_time, unparsed, 0)


def _read_lines(file: Path) -> Iterator[str]:
    opener: Any = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8", errors="replace", newline=None) as f:
        yield from f


def ingest(trace_dir: str | os.PathLike[str], file: str | os.PathLike[str],
           source: str | None = None, *, tz: tzinfo | None = None) -> IngestResult:
    """Append a log captured elsewhere to a trace's ``log`` table, aligned via its timestamps.

    The table is rewritten whole (existing rows + new rows, ordered by time) to a temporary file
    renamed over ``log.arrows``, so a crash leaves either the old or the new table. Rows from an
    earlier ingest with the same source are replaced (ingesting twice does not double them).
    Run it on a finished trace: a recorder still writing ``log.arrows`` would lose its rows.
    """
    d = Path(trace_dir)
    f = Path(file)
    meta = schema.read_meta(d)
    if not f.exists():
        raise UsageError(f"{f}: no such file")
    if f.is_dir():
        raise UsageError(f"{f}: is a directory, expected a log file")
    offset = meta.get("realtime_offset_ns")
    if not isinstance(offset, int):
        raise TraceError(f"{d}: trace has no realtime_offset_ns in {schema.META_FILE}; "
                         "cannot align wall-clock log times to it")
    src = f"file:{source or f.name}"
    reference = int(meta.get("start_ns", 0)) + offset
    try:
        new, result = rows_from_lines(_read_lines(f), src, offset_ns=offset,
                                      reference_ns=reference, tz=tz)
    except PermissionError:
        raise UsageError(f"{f}: permission denied") from None
    except (OSError, EOFError) as e:
        raise UsageError(f"{f}: cannot read ({e})") from None

    target = d / ("log" + schema.TABLE_SUFFIX)
    replaced = 0
    parts = []
    if target.exists():
        old, _note = schema.read_table(target, schema.LOG)
        keep = pc.not_equal(old["source"], src)
        keep = pc.fill_null(keep, True)
        replaced = old.num_rows - pc.sum(keep.cast(pa.int64())).as_py() if old.num_rows else 0
        parts.append(old.filter(keep))
    parts.append(new)
    merged = pa.concat_tables(parts)
    order = pc.sort_indices(merged, sort_keys=[("ts_ns", "ascending")])  # stable; nulls last
    merged = merged.take(order)

    tmp = d / ("log" + schema.TABLE_SUFFIX + ".tmp")
    writer = schema.StreamWriter(tmp, schema.LOG)
    try:
        writer.write(merged)
    finally:
        writer.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    with contextlib.suppress(OSError):
        meta.setdefault("ingested_logs", []).append(
            {"source": src, "file": str(f), "rows": result.rows})
        schema.write_meta(d, meta)
    return IngestResult(result.source, result.rows, result.own_time, result.neighbour_time,
                        result.no_time, result.unparsed, replaced)
