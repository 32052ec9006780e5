"""Critical path: walk back from the end milestone through the wait-for graph to the start.

Contract: ``walk(procs, waits, start_ns, end_ns, end_proc, label) -> list[Segment]``, segments in
time order, contiguous, and summing EXACTLY to end_ns - start_ns.

At (process P, time t) the walk takes P's latest wait that ended at or before t:
* everything after that wait's end is P's own work: ``run`` (or ``wait:child`` /
  ``wait:module`` while P is a helper its parent waited on);
* listener wait (first failure a, listen r, first ok o): [r, o] is ``wait:poll-lag`` (time lost
  to the retry interval); before r the path continues in the process that listened (its
  startup work is what the waiter waited for), also when another process accepts. Listener
  unknown: [a, r or o] is ``wait:listener`` and the walk goes on in P at a.
* poll wait (first attempt a, end e): with a known ready moment r, [r, e] is ``wait:poll-lag`` and
  the walk continues in the target at r; else [a, e] is ``wait:poll``. A poll with a listener part
  adds [o, e] ``wait:poll`` (listening but not ready) and [r, o] ``wait:poll-lag``.
* child wait: the path enters the child at its exit; its time is ``wait:child`` (``wait:module``
  for module helpers) until the wait's start (its fork, or with scheduler data the start of the
  parent's sleep that the child's exit ended), where the walk returns to the parent.
* wakeup (only with scheduler data, ``wake`` given): P's latest idle stretch (>= 1 ms, mostly
  interruptible sleep) that ANOTHER process ended by waking it, when it ended after P's latest
  explicit wait and does not overlap it (socket, poll, child and module waits explain their own
  time first): the path enters the waker at the wakeup instant; the waker's own time is
  ``wait:wakeup`` (the wPerf / Perfetto rule) until P's stretch began, where the walk returns
  to P. A waker not in the process table: P's stretch is one ``wait:wakeup`` segment of P.
With no wait left, P ran since its start: the walk moves to its parent at that moment (a spawn
edge), or stops at the start milestone. Time nobody can account for is ``wait:unknown``.
Without ``wake`` the walk is exactly the one before scheduler data existed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from tracer.analyzer.tree import Processes
from tracer.analyzer.waits import Wait

MAX_STEPS = 100_000


@dataclass(frozen=True)
class WakeEdge:
    """An idle stretch of a process ended by another process's wakeup (scheduler data)."""

    idle_start_ns: int
    ts_ns: int  # the wakeup instant (the stretch's end)
    waker: int | None  # the waker's process instance (None: not in the process table)
    waker_pid: int | None
    waker_tid: int | None
    waker_comm: str | None
    woken_tid: int | None = None


#: (process instance, lo, hi) -> its latest followable wakeup edge ending in (lo, hi]
WakeLookup = Callable[[int, int, int], "WakeEdge | None"]


@dataclass
class Segment:
    start_ns: int
    end_ns: int
    kind: str
    label: str
    proc: int | None
    wait: int | None = None  # index into the waits list
    #: wait:wakeup: the wakeup this segment's time ended, and the process it woke
    wakeup: WakeEdge | None = None
    woken: int | None = None


@dataclass
class _Frame:
    """Inside a woken process's idle stretch: the waker's time, down to the stretch start; or
    (edge None) inside a child its parent began waiting for after the fork: the child's time
    down to the wait's start."""

    waker: int | None
    floor: int
    woken: int
    edge: WakeEdge | None


class _Path:
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.cursor = end
        self.segs: list[Segment] = []
        #: the walk may not go below this (the start, or the innermost wakeup frame's floor)
        self.floor = start

    def emit(
        self,
        lo: int,
        kind: str,
        label: str,
        proc: int | None,
        wait: int | None = None,
        frame: _Frame | None = None,
    ) -> None:
        """Account [lo, cursor] (clipped at the floor) and move the cursor back to lo."""
        lo = max(lo, self.floor)
        if lo >= self.cursor:
            return
        seg = Segment(lo, self.cursor, kind, label, proc, wait)
        if frame is not None and frame.edge is not None:
            seg.wakeup, seg.woken = frame.edge, frame.woken
        self.segs.append(seg)
        self.cursor = lo

    @property
    def done(self) -> bool:
        return self.cursor <= self.start


def walk(
    procs: Processes,
    waits: list[Wait],
    start_ns: int,
    end_ns: int,
    end_proc: int | None,
    label: Callable[[int], str],
    helper_kind: Callable[[int], str],
    wake: WakeLookup | None = None,
) -> list[Segment]:
    """The critical path (see module docstring)."""
    path = _Path(start_ns, end_ns)
    by_waiter: dict[int, list[tuple[int, int]]] = defaultdict(list)  # waiter -> (end, wait idx)
    for k, w in enumerate(waits):
        end = _edge_end(w)
        if w.waiter is not None and end is not None and w.kind in ("listener", "poll", "child"):
            by_waiter[w.waiter].append((end, k))
    for v in by_waiter.values():
        v.sort()
    ends = {p: [e for e, _ in v] for p, v in by_waiter.items()}
    used: set[int] = set()
    followed: set[tuple[int, int]] = set()
    mode: dict[int, str] = {}

    proc = end_proc
    frames: list[_Frame] = []
    steps = 0
    while not path.done and steps < MAX_STEPS:
        steps += 1
        while frames and path.cursor <= frames[-1].floor:  # back in the woken process
            proc = frames.pop().woken
            path.floor = frames[-1].floor if frames else path.start
        if proc is None:
            if not frames:
                break
            path.emit(path.floor, "wait:unknown", "not attributable to a process in the trace",
                      None)
            continue
        p = procs.procs[proc]
        frame = frames[-1] if frames and frames[-1].waker == proc else None
        woke = frame is not None and frame.edge is not None
        own = "wait:wakeup" if woke else mode.get(proc, "run")
        own_label = _woke_label(label(proc), procs, frame) if woke and frame else label(proc)
        t = path.cursor
        w_idx = None
        if proc in ends:
            i = bisect.bisect_right(ends[proc], t) - 1
            while i >= 0 and by_waiter[proc][i][1] in used:
                i -= 1
            if i >= 0 and (p.start_ns is None or by_waiter[proc][i][0] >= p.start_ns):
                w_idx = by_waiter[proc][i][1]
        edge = None
        if wake is not None:
            lo = path.floor
            if p.start_ns is not None:
                lo = max(lo, p.start_ns)
            if w_idx is not None:
                lo = max(lo, _edge_end(waits[w_idx]) or lo)
            edge = wake(proc, lo, t)
            if edge is not None and w_idx is not None and \
                    edge.idle_start_ns < (_edge_end(waits[w_idx]) or 0):
                edge = None  # the explicit wait explains this stretch
            if edge is not None and (proc, edge.ts_ns) in followed:
                edge = None
        if edge is not None:
            followed.add((proc, edge.ts_ns))
            path.emit(edge.ts_ns, own, own_label, proc, frame=frame)
            new = _Frame(edge.waker, max(edge.idle_start_ns, path.floor), proc, edge)
            if edge.waker is None or edge.waker == proc:  # waker not in the process table
                path.emit(new.floor, "wait:wakeup", _unknown_waker_label(edge), proc,
                          frame=new)
                continue
            frames.append(new)
            path.floor = new.floor
            proc = edge.waker
            continue
        if w_idx is None:
            if p.start_ns is not None and p.start_ns > path.start:
                path.emit(p.start_ns, own, own_label, proc, frame=frame)
                if path.cursor > path.floor:  # reached its start: the spawn edge
                    proc = p.parent
                continue
            path.emit(path.start, own, own_label, proc, frame=frame)
            continue
        used.add(w_idx)
        w = waits[w_idx]
        e = _edge_end(w)
        assert e is not None
        path.emit(e, own, own_label, proc, frame=frame)
        if w.kind == "child" and w.target is not None and \
                w.start_ns > (procs.procs[w.target].start_ns or w.start_ns):
            # the parent began waiting after the fork (it worked first): the child is on the
            # path only from the wait's start, where the walk returns to the parent
            frames.append(_Frame(w.target, max(w.start_ns, path.floor), proc, None))
            path.floor = frames[-1].floor
        proc = _follow_wait(path, w, w_idx, proc, procs, label, helper_kind, mode)
    if not path.done:
        path.floor = path.start
        path.emit(path.start, "wait:unknown", "not attributable to a process in the trace", None)
    segs = list(reversed(path.segs))
    return _merge(segs)


def _woke_label(waker_label: str, procs: Processes, frame: _Frame) -> str:
    q = procs.procs[frame.woken]
    assert frame.edge is not None
    idle = (frame.edge.ts_ns - frame.edge.idle_start_ns) / 1e6
    return f"{waker_label} (woke {q.comm or '?'}[{q.pid}] after {idle:,.1f} ms asleep)"


def _unknown_waker_label(edge: WakeEdge) -> str:
    idle = (edge.ts_ns - edge.idle_start_ns) / 1e6
    return (f"asleep {idle:,.1f} ms until woken by {edge.waker_comm or '?'}[{edge.waker_pid}] "
            "(not in the trace's process table)")


def _edge_end(w: Wait) -> int | None:
    if w.kind == "listener":
        return w.first_ok_ns
    if w.kind == "poll":
        return w.ended_ns
    return w.end_ns


def _follow_wait(
    path: _Path,
    w: Wait,
    k: int,
    proc: int,
    procs: Processes,
    label: Callable[[int], str],
    helper_kind: Callable[[int], str],
    mode: dict[int, str],
) -> int | None:
    """Emit the wait's own segments; return the process the walk continues in."""
    ep = w.endpoint or "?"
    if w.kind == "child":
        assert w.target is not None
        mode[w.target] = helper_kind(w.target)
        return w.target
    if w.kind == "poll" and w.first_ok_ns is not None and w.ended_ns is not None:
        path.emit(
            w.first_ok_ns,
            "wait:poll",
            f"polling {ep} every {_ms(w.interval_ns)}: answering, not ready yet",
            proc,
            k,
        )
    if w.kind == "poll" and w.first_ok_ns is None:
        if w.ready_ns is None:
            path.emit(
                w.first_attempt_ns or w.start_ns,
                "wait:poll",
                f"polling {ep} every {_ms(w.interval_ns)} until ready",
                proc,
                k,
            )
            return proc
        path.emit(
            w.ready_ns,
            "wait:poll-lag",
            f"{ep} ready; noticed at the next poll (every {_ms(w.interval_ns)})",
            proc,
            k,
        )
        return w.target if w.target is not None else proc
    # listener (or the listener part of a poll)
    if w.ready_ns is not None:
        path.emit(
            w.ready_ns,
            "wait:poll-lag",
            f"{ep} listening; noticed at the next retry (every {_ms(w.interval_ns)})",
            proc,
            k,
        )
        if w.listener is not None:  # the listen was another process's than the acceptor's
            return w.listener
        if w.target is not None:
            return w.target
        path.emit(
            w.first_attempt_ns or w.start_ns,
            "wait:listener",
            f"waiting for {ep} to be listened on",
            proc,
            k,
        )
        return proc
    path.emit(
        w.first_attempt_ns or w.start_ns,
        "wait:listener",
        f"waiting for {ep} to be listened on (listener not in the trace)",
        proc,
        k,
    )
    return proc


def _ms(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e6:.0f} ms"


def _merge(segs: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segs:
        if (
            out
            and out[-1].kind == s.kind
            and out[-1].proc == s.proc
            and out[-1].label == s.label
            and out[-1].end_ns == s.start_ns
            and out[-1].wakeup == s.wakeup
        ):
            out[-1].end_ns = s.end_ns
        else:
            out.append(s)
    return out
