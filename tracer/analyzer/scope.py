"""Scope pass: which processes an analysis is about.

A trace is system-wide: every process on the machine is in it. When the trace was recorded with
``record -- CMD`` (meta ``command_pid``), the default scope is the recorded command's process
tree: the command and every process it forked, directly or not, across execs (an exec keeps the
process instance). Everything else is left out of the waits, milestones, phases, counts and
the critical path, except as a wait's TARGET: a listen by a process outside the tree still
resolves who a client in the tree waited for.

Contract: ``tree_of(procs, root) -> set[int]`` (instance indices) and
``views(trace, procs, keep) -> (strict, for_waits, rows)``: two filtered traces. ``strict`` holds
only in-scope rows of the process, socket and module tables; ``for_waits`` also keeps every listen
(the targets); ``rows[table]`` maps a ``for_waits`` row number back to the trace's own (evidence
row numbers must index the tables ``tracer.schema.load()`` returns). The other tables (snapshot,
listeners, cgroup, netlink, log) are kept whole: logs come from the recorded command or from a
journal the user asked for.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracer.analyzer.tree import Processes
from tracer.schema import Trace

MODES = ("tree", "all")


def tree_of(procs: Processes, root: int) -> set[int]:
    """The root instance and all its descendants (by fork)."""
    children: dict[int, list[int]] = defaultdict(list)
    for p in procs.procs:
        if p.parent is not None:
            children[p.parent].append(p.idx)
    seen: set[int] = set()
    todo = [root]
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        todo.extend(children.get(i, ()))
    return seen


def _in(idx: npt.NDArray[np.int64], keep: set[int]) -> pa.Array:
    return pa.array(np.isin(idx, np.fromiter(keep, np.int64, len(keep))))


def views(
    trace: Trace, procs: Processes, keep: set[int]
) -> tuple[Trace, Trace, dict[str, npt.NDArray[np.int64]]]:
    """(strict, for_waits, rows) views of the trace restricted to the instances in keep."""
    strict = dict(trace.tables)
    for_waits = dict(trace.tables)
    rows: dict[str, npt.NDArray[np.int64]] = {}
    for name in ("process", "socket", "module"):
        t = trace.table(name)
        if t.num_rows == 0:
            continue
        idx = procs.assign(t["pid"], pc.fill_null(t["ts_ns"], 0))
        mine = _in(idx, keep)
        strict[name] = t.filter(mine)
        if name == "socket":  # a wait's target may be outside: who listened, who accepted
            serving = pc.fill_null(pc.is_in(t["kind"], pa.array(["listen", "accept"])), False)
            wanted = pc.or_(mine, serving)
        else:
            wanted = mine
        for_waits[name] = t.filter(wanted)
        rows[name] = pc.indices_nonzero(wanted).to_numpy().astype(np.int64)
    return (
        Trace(path=trace.path, meta=trace.meta, tables=strict, truncated=trace.truncated,
              missing=trace.missing),
        Trace(path=trace.path, meta=trace.meta, tables=for_waits, truncated=trace.truncated,
              missing=trace.missing),
        rows,
    )
