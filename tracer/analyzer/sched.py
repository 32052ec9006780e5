"""What a process was doing, from the ``sched`` and ``wakeup`` tables (pure functions, no root).

Definitions (docs/sched.md):

* A thread's rows tile its time exactly (tracer/collector/sched.py). A row is either one
  state (exact) or ``mixed``: short intervals folded in BPF whose order is lost; inside a
  mixed row each state is taken as spread evenly over the row (``ns / span``).
* A process at an instant is ``cpu`` if any of its threads runs, else ``steal`` if one had a
  CPU the hypervisor did not run (a part of a cpu row: bpf/sched.bpf.c "Steal"), else
  ``other`` if any
  thread's state is not known (it could be running), else ``runqueue`` if any is runnable,
  else ``io`` if any is in uninterruptible sleep, else ``sleep``. Time when the process has no
  observed thread (before it was born, after it died) is ``other``.
* With mixed rows of several threads overlapping, the chance that "some thread is in one of
  the first k states" is combined as if the threads were independent:
  ``A_k = prod_threads(1 - f_thread(first k states))``, state k gets ``A_{k-1} - A_k``. This
  is exact whenever at most one thread is mixed over a stretch (single-threaded processes,
  all long intervals), and always sums to 1.
* ``states_between(pid, t0, t1)`` rounds to integer ns by largest remainder, so the
  values sum EXACTLY to ``t1 - t0``.

The API the critical path needs: :meth:`SchedIndex.states_between` for a run or wait
segment, :meth:`SchedIndex.waker_at` / :meth:`SchedIndex.idle_stretches` for "who ended
this idle stretch" (the wPerf/Perfetto wakeup rule), :meth:`SchedIndex.busy_cores` for the
machine's CPU use over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tracer.analyzer.tree import unique_sorted

STATES = ("cpu", "runqueue", "io", "sleep", "other", "steal")
#: process-level precedence; index into the per-row ns columns below. steal (on a CPU as the
#: guest kernel sees it, not run: the hypervisor took the vCPU) ranks just below cpu: a thread
#: that had the CPU, even one the host did not run, is the process's busiest state after cpu
PRIORITY = ("cpu", "steal", "other", "runqueue", "io", "sleep")
_NS_COLS = tuple(f"{s}_ns" for s in PRIORITY)
IDLE = ("io", "sleep")
#: the busy-cores resolution (and the BPF fold bucket)
BUCKET_NS = 10_000_000
#: the critical path's idle-stretch threshold (and the BPF long-interval threshold)
MIN_IDLE_NS = 1_000_000

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Waker:
    """The wakeup that ended an idle stretch of `pid`'s thread `tid` at `ts_ns`."""

    ts_ns: int
    pid: int | None
    tid: int
    kind: str  # "process" | "timer" | "network" | "disk" | "unknown"
    waker_pid: int | None
    waker_tid: int | None
    waker_comm: str | None
    idle_start_ns: int | None  # None: asleep since before the trace
    idle_state: str  # "io" | "sleep" | "other"
    irq_name: str | None = None
    softirq: str | None = None

    @property
    def other_process(self) -> bool:
        """Woken by a different process (the critical path follows these)."""
        return self.kind == "process" and self.waker_pid is not None and \
            self.waker_pid != self.pid


@dataclass(frozen=True)
class IdleStretch:
    start_ns: int
    end_ns: int
    io_ns: int  # of which uninterruptible (the rest is sleep)
    waker: Waker | None  # None: ended by the trace window, or no record of the wakeup


@dataclass
class _Rows:
    start: I64
    end: I64
    tid: I64
    ns: I64  # (n, len(PRIORITY)) in PRIORITY order


def exact_split(weights: F64, total: int) -> list[int]:
    """Non-negative integers proportional to `weights`, summing exactly to `total`
    (largest remainder)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    s = float(w.sum())
    if total <= 0 or s <= 0:
        out = [0] * len(w)
        if total > 0:
            out[-1] = total
        return out
    raw = w * (total / s)
    base = np.floor(raw).astype(np.int64)
    short = int(total - int(base.sum()))
    if short > 0:
        order = np.argsort(-(raw - base), kind="stable")
        base[order[:short]] += 1
    elif short < 0:  # float noise only
        order = np.argsort(raw - base, kind="stable")
        for i in order:
            if short == 0:
                break
            take = min(int(base[i]), -short)
            base[i] -= take
            short += take
    return [int(x) for x in base]


class SchedIndex:
    """The sched/wakeup tables indexed by process, for many queries over one trace."""

    def __init__(self, sched: pa.Table, wakeup: pa.Table | None = None) -> None:
        self.available = sched.num_rows > 0
        pid = np.asarray(sched["pid"].fill_null(-1).to_numpy(), dtype=np.int64)
        start = np.asarray(sched["start_ns"].to_numpy(), dtype=np.int64)
        order = np.lexsort((start, pid))
        self._pid = pid[order]
        self._start = start[order]
        self._end = np.asarray(sched["end_ns"].to_numpy(), dtype=np.int64)[order]
        self._tid = np.asarray(sched["tid"].to_numpy(), dtype=np.int64)[order]
        # steal_ns is null in traces before schema 1.4 (no steal measured: 0)
        self._ns = np.stack([np.asarray(sched[c].fill_null(0).to_numpy(), dtype=np.int64)[order]
                             for c in _NS_COLS], axis=1) if sched.num_rows else \
            np.zeros((0, len(PRIORITY)), dtype=np.int64)
        self._wake = wakeup if wakeup is not None and wakeup.num_rows else None
        self._wake_by_pid: dict[int, tuple[I64, list[dict[str, Any]]]] = {}
        if self._wake is not None:
            rows = sorted(self._wake.to_pylist(), key=lambda r: int(r["ts_ns"]))
            by: dict[int, list[dict[str, Any]]] = {}
            for r in rows:
                if r["pid"] is not None:
                    by.setdefault(int(r["pid"]), []).append(r)
            self._wake_by_pid = {p: (np.array([int(r["ts_ns"]) for r in rs], dtype=np.int64),
                                     rs) for p, rs in by.items()}

    @classmethod
    def from_trace(cls, trace: Any) -> SchedIndex:
        """From a tracer.schema.Trace (empty, .available False, for traces without sched)."""
        return cls(trace.table("sched"), trace.table("wakeup"))

    # -- per process ------------------------------------------------------------------------
    def _rows(self, pid: int, t0: int, t1: int) -> _Rows:
        lo = int(np.searchsorted(self._pid, pid, "left"))
        hi = int(np.searchsorted(self._pid, pid, "right"))
        sl = slice(lo, hi)
        keep = (self._end[sl] > t0) & (self._start[sl] < t1)
        return _Rows(self._start[sl][keep], self._end[sl][keep], self._tid[sl][keep],
                     self._ns[sl][keep])

    def timeline(self, pid: int, t0: int, t1: int) -> tuple[I64, F64]:
        """(bounds, fractions): the process's state over [t0, t1) as segments
        [bounds[i], bounds[i+1]) with fractions[i] = share of each of STATES (sums to 1)."""
        if t1 <= t0:
            return np.array([t0], dtype=np.int64), np.zeros((0, len(STATES)))
        r = self._rows(pid, t0, t1)
        s = np.clip(r.start, t0, t1)
        e = np.clip(r.end, t0, t1)
        bounds = unique_sorted(np.concatenate([[t0, t1], s, e]))
        k = len(bounds) - 1
        nlev = len(PRIORITY)
        zero = np.zeros((nlev, k + 1), dtype=np.int64)
        logs = np.zeros((nlev, k + 1), dtype=np.float64)
        if len(s):
            i0 = np.searchsorted(bounds, s)
            i1 = np.searchsorted(bounds, e)
            span = (r.end - r.start).astype(np.float64)
            cum = np.cumsum(r.ns, axis=1)  # ns in the first j+1 PRIORITY states
            full = cum >= (r.end - r.start)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                lg = np.where(full, 0.0, np.log1p(-np.minimum(cum / span[:, None], 1.0)))
            for j in range(nlev):
                np.add.at(zero[j], i0, full[:, j].astype(np.int64))
                np.add.at(zero[j], i1, -full[:, j].astype(np.int64))
                np.add.at(logs[j], i0, lg[:, j])
                np.add.at(logs[j], i1, -lg[:, j])
        z = np.cumsum(zero, axis=1)[:, :k]
        lsum = np.cumsum(logs, axis=1)[:, :k]
        a = np.where(z > 0, 0.0, np.exp(np.minimum(lsum, 0.0)))  # (nlev, k)
        prev = np.vstack([np.ones((1, k)), a[:-1]])
        frac_p = np.clip(prev - a, 0.0, 1.0)  # by PRIORITY
        frac_p[PRIORITY.index("other")] += a[-1]  # no thread observed: other
        frac = np.zeros((k, len(STATES)))
        for j, name in enumerate(PRIORITY):
            frac[:, STATES.index(name)] = frac_p[j]
        return bounds, frac

    def states_between(self, pid: int, t0: int, t1: int) -> dict[str, int]:
        """ns per state over [t0, t1), summing exactly to t1 - t0 (keys: STATES)."""
        if t1 < t0:
            raise ValueError(f"t1 ({t1}) before t0 ({t0})")
        if t1 == t0:
            return dict.fromkeys(STATES, 0)
        bounds, frac = self.timeline(pid, t0, t1)
        seg = np.diff(bounds).astype(np.float64)
        weights = (frac * seg[:, None]).sum(axis=0)
        return dict(zip(STATES, exact_split(weights, t1 - t0)))

    def thread_buckets(self, pid: int, edges: I64) -> tuple[I64, F64]:
        """(tids, ns): ns[k, b, j] = time thread tids[k] of `pid` spent in STATES[j] in bucket
        [edges[b], edges[b+1]); time without a row (before a thread's first record, after its
        end) is `other`. Columnar per thread: its rows tile its time, so its cumulative state
        time is linear inside each row (a mixed row's states spread evenly) and is read at the
        bucket edges by interpolation."""
        t0, t1 = int(edges[0]), int(edges[-1])
        r = self._rows(pid, t0, t1)
        nb = len(edges) - 1
        if len(r.tid) == 0 or nb <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, max(nb, 0), len(STATES)))
        order = np.lexsort((r.start, r.tid))
        tid, start, end, ns = r.tid[order], r.start[order], r.end[order], r.ns[order]
        cols = [PRIORITY.index(x) for x in STATES]  # PRIORITY-ordered columns -> STATES order
        ns = ns[:, cols].astype(np.float64)
        cut = np.flatnonzero(np.diff(tid)) + 1
        tids = tid[np.concatenate([[0], cut])]
        out = np.zeros((len(tids), nb, len(STATES)))
        width = np.diff(edges).astype(np.float64)
        x = edges.astype(np.float64)
        for k, (a, b) in enumerate(zip(np.concatenate([[0], cut]).tolist(),
                                        np.concatenate([cut, [len(tid)]]).tolist())):
            xp = np.empty(2 * (b - a))
            xp[0::2], xp[1::2] = start[a:b], end[a:b]
            cum = np.cumsum(ns[a:b], axis=0)
            for j in range(len(STATES)):
                fp = np.empty(2 * (b - a))
                fp[1::2] = cum[:, j]
                fp[0::2] = np.concatenate([[0.0], cum[:-1, j]])
                out[k, :, j] = np.diff(np.interp(x, xp, fp))
            out[k, :, STATES.index("other")] += np.clip(width - out[k].sum(axis=1), 0.0, None)
        return tids, out

    def idle_arrays(self, pid: int, t0: int, t1: int,
                    min_ns: int = MIN_IDLE_NS) -> tuple[I64, I64, I64]:
        """(starts, ends, io ns) of the maximal stretches in [t0, t1) where the process was
        certainly idle (io or sleep) for at least min_ns; columnar (run lengths over the
        process's timeline, no per-row Python)."""
        bounds, frac = self.timeline(pid, t0, t1)
        empty = np.zeros(0, dtype=np.int64)
        if len(frac) == 0:
            return empty, empty, empty
        io_frac = frac[:, STATES.index("io")]
        idle = io_frac + frac[:, STATES.index("sleep")] >= 1.0 - 1e-9
        edge = np.diff(np.concatenate([[0], idle.astype(np.int8), [0]]))
        first = np.flatnonzero(edge == 1)  # first segment of each stretch
        past = np.flatnonzero(edge == -1)  # one past its last segment
        io_cum = np.concatenate([[0.0], np.cumsum(io_frac * np.diff(bounds))])
        starts, ends = bounds[first], bounds[past]
        io = np.rint(io_cum[past] - io_cum[first]).astype(np.int64)
        keep = ends - starts >= min_ns
        return starts[keep], ends[keep], io[keep]

    def idle_stretches(self, pid: int, t0: int, t1: int,
                       min_ns: int = MIN_IDLE_NS) -> list[IdleStretch]:
        """Maximal stretches in [t0, t1) where the process was certainly idle (io or sleep)
        for at least min_ns, each with the wakeup that ended it when it was recorded."""
        starts, ends, io = self.idle_arrays(pid, t0, t1, min_ns)
        return [IdleStretch(s, e, i, self.waker_exact(pid, e) if e < t1 else None)
                for s, e, i in zip(starts.tolist(), ends.tolist(), io.tolist())]

    # -- wakeups ----------------------------------------------------------------------------
    def waker_exact(self, pid: int, ts: int) -> Waker | None:
        """The recorded wakeup of one of `pid`'s threads at exactly ts (an idle stretch's end)."""
        got = self._wake_by_pid.get(pid)
        if got is None:
            return None
        tss, rows = got
        i = int(np.searchsorted(tss, ts, "left"))
        return _waker(rows[i]) if i < len(tss) and tss[i] == ts else None

    def wakeups(self, pid: int, t0: int, t1: int) -> list[Waker]:
        """The recorded wakeups of `pid`'s threads in [t0, t1] (each ended an idle stretch of
        >= 1 ms of ONE thread: a process-level stretch may be cut short by another thread)."""
        got = self._wake_by_pid.get(pid)
        if got is None:
            return []
        tss, rows = got
        lo = int(np.searchsorted(tss, t0, "left"))
        hi = int(np.searchsorted(tss, t1, "right"))
        return [_waker(r) for r in rows[lo:hi]]

    def waker_at(self, pid: int, t: int, max_lag_ns: int = 10_000_000) -> Waker | None:
        """The wakeup that ended `pid`'s idle stretch ending at t: the latest recorded wakeup
        of one of its threads in [t - max_lag_ns, t] (t may be when the process was seen
        running again: the waking precedes it by the runqueue delay)."""
        got = self._wake_by_pid.get(pid)
        if got is None:
            return None
        tss, rows = got
        i = int(np.searchsorted(tss, t, "right")) - 1
        if i < 0 or tss[i] < t - max_lag_ns:
            return None
        return _waker(rows[i])

    def cpu_by_pid(self, t0: int, t1: int) -> dict[int, int]:
        """On-CPU ns of each process (all its threads together, so it can exceed t1 - t0) over
        [t0, t1), mixed rows spread evenly over their span; processes with none left out."""
        cpu = self._ns[:, PRIORITY.index("cpu")]
        m = (cpu > 0) & (self._end > t0) & (self._start < t1) & (self._pid >= 0)
        start, end, c, pid = self._start[m], self._end[m], cpu[m], self._pid[m]
        span = np.maximum(end - start, 1).astype(np.float64)
        inside = (np.minimum(end, t1) - np.maximum(start, t0)).astype(np.float64)
        part = c.astype(np.float64) * inside / span
        out: dict[int, int] = {}
        for p, v in zip(pid.tolist(), part.tolist()):
            out[p] = out.get(p, 0) + v
        return {p: round(v) for p, v in out.items() if round(v) > 0}

    # -- machine ----------------------------------------------------------------------------
    def busy_cores(self, t0: int, t1: int, bucket_ns: int = BUCKET_NS) -> tuple[I64, F64]:
        """(bucket starts, busy cores in each bucket) over [t0, t1): the CPU time of every
        thread in the bucket / bucket length (mixed rows spread evenly over their span)."""
        edges = np.arange(t0, t1 + bucket_ns, bucket_ns, dtype=np.int64)
        if len(edges) < 2:
            return edges[:0], np.zeros(0)
        cpu = self._ns[:, PRIORITY.index("cpu")]
        m = cpu > 0
        start, end, c = self._start[m], self._end[m], cpu[m].astype(np.float64)
        rate = c / np.maximum(end - start, 1).astype(np.float64)
        # cumulative CPU time C(x) = sum rate_i * clip(x - start_i, 0, span_i), evaluated as
        # x * S(x) - Q(x) over the sorted slope changes (+rate at start, -rate at end);
        # positions relative to t0 keep the products small
        pts = np.concatenate([start, end]) - t0
        slope = np.concatenate([rate, -rate])
        o = np.argsort(pts, kind="stable")
        pts, slope = pts[o].astype(np.float64), slope[o]
        s_cum = np.cumsum(slope)
        q_cum = np.cumsum(slope * pts)
        x = (edges - t0).astype(np.float64)
        idx = np.searchsorted(pts, x, "right") - 1
        valid = idx >= 0
        cx = np.zeros(len(x))
        cx[valid] = x[valid] * s_cum[idx[valid]] - q_cum[idx[valid]]
        return edges[:-1], np.diff(cx) / float(bucket_ns)


def _waker(r: dict[str, Any]) -> Waker:
    return Waker(ts_ns=int(r["ts_ns"]), pid=r["pid"], tid=int(r["tid"]), kind=r["waker"],
                 waker_pid=r["waker_pid"], waker_tid=r["waker_tid"],
                 waker_comm=r["waker_comm"],
                 idle_start_ns=None if r["idle_start_ns"] is None else int(r["idle_start_ns"]),
                 idle_state=r["idle_state"], irq_name=r["irq_name"], softirq=r["softirq"])


def states_between(sched: pa.Table, pid: int, t0: int, t1: int) -> dict[str, int]:
    """ns per state of `pid` over [t0, t1), summing exactly to t1 - t0 (one-off query;
    build a SchedIndex for many)."""
    return SchedIndex(sched).states_between(pid, t0, t1)


def waker_at(sched: pa.Table, wakeup: pa.Table, pid: int, t: int,
             max_lag_ns: int = 10_000_000) -> Waker | None:
    """The waker of `pid`'s idle stretch ending at t (see SchedIndex.waker_at)."""
    return SchedIndex(sched, wakeup).waker_at(pid, t, max_lag_ns)
