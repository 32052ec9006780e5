"""Wakeups as wait-for edges (issue 15, the wPerf / Perfetto rule), from a SchedIndex.

* :class:`WakeEdges` answers the critical-path walk's question "the latest idle stretch of this
  process, ending in (lo, hi], that ANOTHER process ended by waking it": the walk then continues
  in the waker, back in time from the wakeup instant, until the sleeper's stretch began.
  Followed: stretches of >= 1 ms (the recorder writes a wakeup record for exactly those) that
  were mostly interruptible sleep, woken by a process other than the sleeper's own. Not
  followed: stretches mostly in uninterruptible sleep (disk I/O: its waker is the kworker or
  interrupt that completed the request, and "io" on the process's own segment is the answer),
  stretches ended by a timer, the network, the disk, an unknown waker or the process's own
  threads (those stay part of its own segment, with their states).
* :func:`observe_children` makes child waits observed instead of inferred: a parent whose
  thread was woken by the child's exit waited for it, from the start of the sleep that wakeup
  ended (a parent that works before it waits keeps its work: issue 29); a parent that kept
  running (on a CPU or runnable for more than half the child's life) and was not woken by the
  exit did not.

Stretches are computed once per process over the whole trace (columnar, SchedIndex.idle_arrays)
and answered by binary search: a walk of thousands of steps stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from tracer.analyzer.critical_path import WakeEdge
from tracer.analyzer.sched import MIN_IDLE_NS, SchedIndex, Waker
from tracer.analyzer.tree import Processes
from tracer.analyzer.waits import Answered, Wait

#: a stretch is followed when its uninterruptible part is below this share (else it is disk I/O)
MAX_IO_SHARE = 0.5
#: the exit's wakeup of the parent: at most this long before/after the child's exit event
EXIT_WAKE_BEFORE_NS = 1_000_000
EXIT_WAKE_AFTER_NS = 10_000_000
#: a parent busy (cpu + runqueue) for more than this share of the child's life was not waiting
MAX_BUSY_SHARE = 0.5


class WakeEdges:
    """Followable wakeup edges per process instance (see the module docstring)."""

    def __init__(self, ix: SchedIndex, procs: Processes, t0: int, t1: int) -> None:
        self._ix = ix
        self._procs = procs
        self._t0 = t0
        self._t1 = t1
        self._cache: dict[int, tuple[Any, list[WakeEdge]]] = {}
        self._by_pid: dict[int, list[int]] = defaultdict(list)
        for p in procs.procs:
            self._by_pid[p.pid].append(p.idx)

    def instance(self, pid: int | None, ts: int) -> int | None:
        """The process instance with this pid alive at ts (None: not in the process table)."""
        if pid is None or pid <= 0:
            return None
        best = None
        for i in self._by_pid.get(pid, []):
            p = self._procs.procs[i]
            born = p.start_ns if p.start_ns is not None else p.first_seen_ns
            if p.start_ns is not None and born > ts:
                continue
            if p.end_ns is not None and p.end_ns < ts - EXIT_WAKE_AFTER_NS:
                continue
            best = i  # the latest-born instance alive then
        return best

    def _edges(self, pid: int) -> tuple[Any, list[WakeEdge]]:
        got = self._cache.get(pid)
        if got is not None:
            return got
        starts, ends, io = self._ix.idle_arrays(pid, self._t0, self._t1, MIN_IDLE_NS)
        sleepy = io < MAX_IO_SHARE * (ends - starts)
        edges: list[WakeEdge] = []
        for s, e in zip(starts[sleepy].tolist(), ends[sleepy].tolist()):
            w = self._ix.waker_exact(pid, e)
            if w is None or not w.other_process or not w.waker_pid:
                continue
            edges.append(WakeEdge(idle_start_ns=s, ts_ns=e,
                                  waker=self.instance(w.waker_pid, e),
                                  waker_pid=w.waker_pid, waker_tid=w.waker_tid,
                                  waker_comm=w.waker_comm, woken_tid=w.tid))
        got = (np.array([x.ts_ns for x in edges], dtype=np.int64), edges)
        self._cache[pid] = got
        return got

    def __call__(self, proc: int, lo: int, hi: int) -> WakeEdge | None:
        """The latest followable edge of instance `proc` whose wakeup is in (lo, hi]."""
        ends, edges = self._edges(self._procs.procs[proc].pid)
        i = int(np.searchsorted(ends, hi, "right")) - 1
        if i < 0 or ends[i] <= lo:
            return None
        return edges[i]


def observe_children(waits: list[Wait], ix: SchedIndex, procs: Processes) -> list[Wait]:
    """Child waits, observed: kept when the child's exit woke a thread of the parent or the
    parent was mostly off-CPU while the child ran; dropped when the parent kept running; added
    when a parent that looked active (a fork, a connect) was still woken by the child's exit."""

    def woken_by_exit(parent: int, child: int) -> Waker | None:
        c = procs.procs[child]
        if c.end_ns is None:
            return None
        ppid = procs.procs[parent].pid
        return next((w for w in ix.wakeups(ppid, c.end_ns - EXIT_WAKE_BEFORE_NS,
                                           c.end_ns + EXIT_WAKE_AFTER_NS)
                     if w.kind == "process" and w.waker_pid == c.pid), None)

    def waiting_since(w: Wait, woke: Waker) -> None:
        # the parent waited from the start of the sleep the exit ended (its last off-CPU
        # stretch), not from the fork: its work before that is its own (issue 29)
        if woke.idle_start_ns is not None and woke.idle_start_ns > w.start_ns:
            w.start_ns = woke.idle_start_ns

    out: list[Wait] = []
    seen: set[int] = set()
    for w in waits:
        if w.kind != "child" or w.waiter is None or w.target is None or w.end_ns is None:
            out.append(w)
            continue
        seen.add(w.target)
        woke = woken_by_exit(w.waiter, w.target)
        if woke is not None:
            w.reason += "; the child's exit woke it (observed)"
            waiting_since(w, woke)
            out.append(w)
            continue
        # a child seen to exit before its fork (clocks of two vCPUs apart: seen in a TCG VM,
        # 6.5 ms) has no life to look at: its wait is judged on an empty stretch
        st = ix.states_between(procs.procs[w.waiter].pid, w.start_ns,
                               max(w.start_ns, w.end_ns))
        life = max(w.end_ns - w.start_ns, 1)
        if st["cpu"] + st["steal"] + st["runqueue"] <= MAX_BUSY_SHARE * life:
            w.reason += "; off-CPU while it ran (observed)"
            out.append(w)
        # else: the parent kept running while its child ran: not waiting for it
    for c in procs.procs:
        if c.idx in seen or c.parent is None or c.start_ns is None or c.end_ns is None:
            continue
        par = procs.procs[c.parent]
        if par.end_ns is not None and par.end_ns < c.end_ns:
            continue
        woke = woken_by_exit(c.parent, c.idx)
        if woke is not None:
            w = Wait(kind="child", waiter=c.parent, target=c.idx, start_ns=c.start_ns,
                     end_ns=c.end_ns,
                     reason="a thread of the parent was woken by the child's exit (observed)")
            waiting_since(w, woke)
            out.append(w)
    out.sort(key=lambda x: (x.start_ns, x.kind))
    return out


def answers(ix: SchedIndex) -> Answered:
    """When the answer to a connect attempt reached its thread (waits.Answered): the last
    wakeup of that thread after the attempt and before the next one that ended a wait begun
    after the attempt and was not a timer's (a retry loop's sleep is the client's own
    cadence; the wait for the reply is the server's time). None: no such wait of >= 1 ms."""

    def answered(pid: int, tid: int, t0: int, t1: int) -> int | None:
        got = [w.ts_ns for w in ix.wakeups(pid, t0, t1)
               if w.tid == tid and w.kind != "timer" and w.ts_ns < t1
               and w.idle_start_ns is not None and w.idle_start_ns >= t0]
        return got[-1] if got else None

    return answered


__all__ = ["MAX_IO_SHARE", "WakeEdges", "answers", "observe_children"]
