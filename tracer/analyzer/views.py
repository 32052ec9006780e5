"""Views pass: the per-event detail a report draws (every connect attempt, listen, exec, module
load), from the trace tables with pyarrow compute, restricted to the processes the analysis shows
and redacted like the rest of the analysis. Reporters read these, never the tables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from tracer.analyzer.model import Columns, EventViews, ProcessJson
from tracer.analyzer.tree import shared_argvs, shared_strings
from tracer.schema import Trace

if TYPE_CHECKING:
    from tracer.analyzer.work import Redactor


def build(
    trace: Trace,
    processes: list[ProcessJson],
    scoped: bool,
    redact: Redactor,
    lo: int,
    hi: int,
) -> EventViews:
    """Views of the whole trace (scoped: only rows of the processes shown); active_pids covers
    the window [lo, hi] of the whole trace."""
    shown = processes if scoped else None
    sock, proc, mod = trace.table("socket"), trace.table("process"), trace.table("module")
    ok = pc.or_kleene(pc.is_null(sock["ret"]), pc.equal(sock["ret"], 0))
    execs = _columns(
        proc,
        pc.equal(proc["kind"], "exec"),
        ("ts_ns", "pid", "ppid", "comm", "filename", "argv"),
        shown,
    )
    execs["program"] = [
        os.path.basename(f) if f else (c or "?") for f, c in zip(execs["filename"], execs["comm"])
    ]
    execs["argv"] = [redact.argv(list(a or [])) for a in execs["argv"]]
    return EventViews(
        connects=_columns(
            sock,
            pc.equal(sock["kind"], "connect"),
            ("ts_ns", "outcome_ns", "pid", "comm", "endpoint", "outcome", "outcome_errno", "ret"),
            shown,
        ),
        listens=_columns(
            sock,
            pc.and_kleene(pc.equal(sock["kind"], "listen"), ok),
            ("ts_ns", "pid", "comm", "endpoint"),
            shown,
        ),
        execs=execs,
        module_loads=_columns(
            mod,
            pc.is_in(mod["kind"], pa.array(["load", "init_module", "finit_module"])),
            ("ts_ns", "kind", "name", "pid", "comm", "ret"),
            shown,
        ),
        active_pids=_active_pids(trace, lo, hi),
    )


def _columns(
    table: pa.Table, mask: Any, names: Sequence[str], shown: list[ProcessJson] | None
) -> Columns:
    # select before filter: a filtered copy of every column of a 1M-row table costs its size
    t = table.select(list({*names, "pid", "ts_ns"})).filter(pc.fill_null(mask, False))
    if shown is not None:
        t = _of_processes(t, shown)
    t = t.select(list(names)).sort_by([("ts_ns", "ascending")])
    return {
        n: _python(t.column(n))
        for n in names
    }


def _python(col: pa.ChunkedArray) -> list[Any]:
    """A column as Python values; strings and argvs shared between equal rows (tree.py)."""
    if pa.types.is_string(col.type):
        return shared_strings(col)
    if pa.types.is_list(col.type) and pa.types.is_string(col.type.value_type):
        return shared_argvs(col)
    return list(col.to_pylist())


def _of_processes(table: pa.Table, shown: list[ProcessJson]) -> pa.Table:
    """The rows (pid, ts_ns) that fall inside the lifetime of a process shown (pid reuse: the
    pid alone is not enough)."""
    if table.num_rows == 0:
        return table
    spans: dict[int, list[tuple[int, int]]] = {}
    for p in shown:
        lo, hi = p["start_ns"], p["end_ns"]
        spans.setdefault(p["pid"], []).append(
            (-1 if lo is None else lo, 2**63 if hi is None else hi)
        )
    cand = pc.fill_null(pc.is_in(table["pid"], pa.array(sorted(spans), pa.int32())), False)
    idx = pc.indices_nonzero(cand)
    rows = idx.to_pylist()
    pids = table["pid"].take(idx).to_pylist()
    ts = pc.fill_null(table["ts_ns"].take(idx), 0).to_pylist()
    keep = [r for r, p, t in zip(rows, pids, ts) if any(lo <= t <= hi for lo, hi in spans[p])]
    return table.take(pa.array(keep, pa.int64()))


def _active_pids(trace: Trace, lo: int, hi: int) -> set[int]:
    """pids with a process, socket or module event in [lo, hi]."""
    out: set[int] = set()
    for name in ("process", "socket", "module"):
        t = trace.table(name)
        if t.num_rows == 0:
            continue
        ts = t["ts_ns"]
        m = pc.fill_null(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)), False)
        out.update(x for x in pc.unique(pc.filter(t["pid"], m)).to_pylist() if x is not None)
    return out
