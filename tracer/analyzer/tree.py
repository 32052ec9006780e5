"""Process tree pass: process/snapshot tables -> process instances, and event -> instance mapping.

Contract: ``build(trace) -> Processes``. A process *instance* is one thread group from its start
(fork, or the /proc snapshot for processes alive at attach) to its exit; a pid that is reused is a
new instance, so instances are keyed ``"PID@START_NS"`` (``"PID@~FIRST_SEEN_NS"`` when the start
was not seen: the process predates the trace and the snapshot does not have it). An exec keeps the
instance (k3s -> k3s-server is one process with a two-entry exec chain). Threads are counted, not
made into instances.

``Processes.assign(pids, ts)`` maps events (socket, module, log rows) to the instance alive at
their time, vectorized: events whose pid has no instance get an implied one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracer.schema import Trace

I64 = npt.NDArray[np.int64]


#: Proc.names lists, shared between processes that went by the same names (emptied by each
#: build(), so it holds one analysis's distinct name lists at most)
_SHARED_NAMES: dict[tuple[str, ...], list[str]] = {}


@dataclass(slots=True)  # 100k+ instances at 1M events: no per-instance __dict__
class Proc:
    """One process instance (see module docstring)."""

    idx: int
    pid: int
    start_ns: int | None  # None: started before the trace, start unknown
    first_seen_ns: int
    ppid: int | None = None
    parent: int | None = None  # index of the parent instance
    comm: str = ""
    exe: str | None = None
    argv: list[str] = field(default_factory=list)
    end_ns: int | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    threads: int = 1
    from_snapshot: bool = False
    cgroup_id: int | None = None
    execs: list[dict[str, Any]] = field(default_factory=list)  # the exec chain, in order
    #: names, once read (after build(), which sets comm/exe/execs and never reads names)
    _names: list[str] | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        if self.start_ns is None:
            return f"{self.pid}@~{self.first_seen_ns}"
        return f"{self.pid}@{self.start_ns}"

    @property
    def names(self) -> list[str]:
        """Every name this process went by (comm and exec basenames), for profile matching."""
        if self._names is None:
            n = self._all_names()
            # one shared list per distinct set of names: 100k helpers go by a few dozen
            self._names = _SHARED_NAMES.setdefault(tuple(n), n)
        return self._names

    def _all_names(self) -> list[str]:
        out = [self.comm]
        for e in self.execs:
            if e.get("filename"):
                out.append(str(e["filename"]).rsplit("/", 1)[-1])
            if e.get("comm"):
                out.append(str(e["comm"]))
        if self.exe:
            out.append(self.exe.rsplit("/", 1)[-1])
        return [n for n in dict.fromkeys(out) if n]


@dataclass
class Processes:
    procs: list[Proc]
    # sorted lookup arrays for assign(): instance pid and effective start (0 when unknown)
    _pid: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    _lo: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    _order: I64 = field(default_factory=lambda: np.zeros(0, np.int64))

    def reindex(self) -> None:
        pid = np.array([p.pid for p in self.procs], dtype=np.int64)
        lo = np.array([p.start_ns or 0 for p in self.procs], dtype=np.int64)
        order = np.lexsort((lo, pid)).astype(np.int64)
        self._pid, self._lo, self._order = pid[order], lo[order], order

    def _lookup(self, pids: I64, ts: I64) -> I64:
        """Instance index alive at ts for each (pid, ts), -1 where there is none."""
        n = len(pids)
        if n == 0 or len(self._pid) == 0:
            return np.full(n, -1, np.int64)
        # Compose (pid, time-rank) into one sortable int64 so one searchsorted does the join.
        # Ranks count the instance start times <= t (side="right"), so lo <= ts exactly when
        # rank(lo) <= rank(ts); ranking against the instances' times only (thousands) instead
        # of the union with the events' (a million) keeps this a searchsorted, not a sort.
        times = unique_sorted(self._lo)
        r_inst = np.searchsorted(times, self._lo, side="right")
        r_ev = np.searchsorted(times, ts, side="right")
        k_inst = (self._pid << 32) | r_inst
        k_ev = (pids << 32) | r_ev
        pos = np.searchsorted(k_inst, k_ev, side="right") - 1
        ok = pos >= 0
        pos_c = np.where(ok, pos, 0)
        ok &= self._pid[pos_c] == pids
        return np.where(ok, self._order[pos_c], -1)

    def assign(self, pids: Any, ts: Any) -> I64:
        """Instance index for each event (pid, ts); implied instances are added for unknown pids."""
        p = _np(pids)
        t = _np(ts)
        idx = self._lookup(p, t)
        missing = idx < 0
        if missing.any():
            mp, mt = p[missing], t[missing]
            order = np.lexsort((mt, mp))
            upid, first = np.unique(mp[order], return_index=True)
            for pid, t0 in zip(upid.tolist(), mt[order][first].tolist()):
                self.procs.append(
                    Proc(idx=len(self.procs), pid=pid, start_ns=None, first_seen_ns=t0)
                )
            self.reindex()
            idx[missing] = self._lookup(mp, mt)
            # an event before its pid's first known instance: give it the implied one
            still = idx < 0
            if still.any():
                by_pid = {p.pid: p.idx for p in self.procs if p.start_ns is None}
                idx[still] = [by_pid.get(int(x), -1) for x in p[still]]
        return idx


def unique_sorted(a: I64) -> I64:
    """np.unique of an int64 array by sorting: numpy 2.x's plain np.unique hashes, which costs
    ~15x a sort here (0.9 s vs 0.07 s on 1M times)."""
    s = np.sort(a)
    if len(s) == 0:
        return s
    return s[np.r_[True, s[1:] != s[:-1]]]


def _np(col: Any) -> I64:
    if isinstance(col, (pa.Array, pa.ChunkedArray)):
        return np.asarray(pc.fill_null(col, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.asarray(col, dtype=np.int64)


#: rows converted to Python objects at a time in build()
_BUILD_SLICE = 32768


def shared_strings(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A string column as Python values, one str object per distinct value (a few hundred
    names over 100k+ rows: shared objects instead of a copy per row)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = arr.dictionary_encode()
    values = enc.dictionary.to_pylist()
    return [None if i is None else values[i] for i in enc.indices.to_pylist()]


def shared_argvs(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """A list<string> column (argv) as Python lists; rows with the same command line share one
    list (do not mutate it: copy) and its strings.

    Thousands of helpers share a few command lines: each distinct argv is converted once, so
    later per-process work (redaction's cache, profile matching) hashes and compares cached
    strings instead of fresh copies."""
    av = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    flat = pc.list_flatten(av)
    if flat.null_count or pc.any(pc.match_substring(flat, "\x00")).as_py():
        return list(av.to_pylist())  # cannot join losslessly: as is
    # one "\0"-joined string per row (no argument holds a NUL: C strings), dictionary-encoded;
    # empty lists are kept apart (joined, [] and [""] would both be "")
    enc = pc.binary_join(av, "\x00").dictionary_encode()
    distinct = [v.split("\x00") for v in enc.dictionary.to_pylist()]
    empty = pc.equal(pc.list_value_length(av), 0).to_pylist()
    return [
        None if c is None else ([] if e else distinct[c])
        for c, e in zip(enc.indices.to_pylist(), empty)
    ]


def _exec_argvs(pt: pa.Table) -> list[Any]:
    """The argv column on exec rows only (the only rows build() reads it on), else None."""
    out: list[Any] = [None] * pt.num_rows
    rows = pc.indices_nonzero(pc.fill_null(pc.equal(pt["kind"], "exec"), False))
    if len(rows):
        for r, v in zip(rows.to_pylist(), shared_argvs(pt["argv"].take(rows))):
            out[r] = v
    return out


def build(trace: Trace) -> Processes:
    """Process instances from the snapshot and the process table (see module docstring)."""
    _SHARED_NAMES.clear()
    procs: list[Proc] = []
    alive: dict[int, Proc] = {}

    snap = trace.table("snapshot")
    if snap.num_rows:
        for r in snap.sort_by("start_ns").to_pylist():
            start = r["start_ns"]
            p = Proc(
                idx=len(procs),
                pid=int(r["pid"]),
                start_ns=int(start) if start is not None else None,
                first_seen_ns=int(r["ts_ns"] or 0),
                ppid=r["ppid"],
                comm=r["comm"] or "",
                exe=r["exe"],
                argv=list(r["argv"] or []),
                from_snapshot=True,
                cgroup_id=r["cgroup_id"],
            )
            procs.append(p)
            alive[p.pid] = p
        for p in procs:
            if p.ppid is not None and p.ppid in alive and alive[p.ppid] is not p:
                p.parent = alive[p.ppid].idx

    def implied(pid: int, ts: int) -> Proc:
        p = Proc(idx=len(procs), pid=pid, start_ns=None, first_seen_ns=ts)
        procs.append(p)
        alive[pid] = p
        return p

    pt = trace.table("process")
    if pt.num_rows:
        order = pc.sort_indices(pt, [("ts_ns", "ascending")])
        if not np.array_equal(order.to_numpy(), np.arange(len(order))):
            pt = pt.take(order)  # a sorted copy only when the recorder's flushes interleave
        argv = _exec_argvs(pt)
        # Python values a slice at a time: the columns of every row as Python objects at once
        # were ~60% of the peak memory of a 1M-event analysis
        for off in range(0, pt.num_rows, _BUILD_SLICE):
            part = pt.slice(off, _BUILD_SLICE)
            cols = {
                c: part.column(c).to_pylist()
                for c in ("ts_ns", "pid", "ppid", "exit_code", "exit_signal", "cgroup_id")
            }
            for c in ("kind", "comm", "filename"):
                cols[c] = shared_strings(part.column(c))
            for i in range(part.num_rows):
                kind = cols["kind"][i]
                pid = cols["pid"][i]
                ts = cols["ts_ns"][i] or 0
                if pid is None:
                    continue
                if kind == "fork":
                    prev = alive.get(pid)
                    if prev is not None and prev.end_ns is None:
                        prev.end_ns = ts  # its exit was lost: pid reuse proves it ended
                    parent = alive.get(cols["ppid"][i]) if cols["ppid"][i] is not None else None
                    p = Proc(
                        idx=len(procs),
                        pid=pid,
                        start_ns=ts,
                        first_seen_ns=ts,
                        ppid=cols["ppid"][i],
                        parent=parent.idx if parent else None,
                        comm=cols["comm"][i] or (parent.comm if parent else ""),
                        exe=parent.exe if parent else None,
                        argv=list(parent.argv) if parent else [],
                        cgroup_id=cols["cgroup_id"][i],
                    )
                    procs.append(p)
                    alive[pid] = p
                    continue
                p = alive.get(pid) or implied(pid, ts)
                if kind == "thread":
                    p.threads += 1
                elif kind == "exec":
                    entry = {
                        "ts_ns": ts,
                        "filename": cols["filename"][i],
                        "argv": list(argv[off + i] or []),
                        "comm": cols["comm"][i],
                    }
                    p.execs.append(entry)
                    p.exe = cols["filename"][i] or p.exe
                    p.argv = entry["argv"]
                    p.comm = cols["comm"][i] or p.comm
                    if cols["cgroup_id"][i] is not None:
                        p.cgroup_id = cols["cgroup_id"][i]
                elif kind == "exit":
                    p.end_ns = ts
                    p.exit_code = cols["exit_code"][i]
                    p.exit_signal = cols["exit_signal"][i]
                    if cols["comm"][i]:
                        p.comm = cols["comm"][i]
                    del alive[pid]
                # exec_failed: the process keeps its image; nothing to record on the instance
    out = Processes(procs)
    out.reindex()
    return out
