"""Critical path: walk back from the end milestone through the wait-for graph to the start.

Contract: ``walk(procs, waits, start_ns, end_ns, end_proc, label) -> list[Segment]``, segments in
time order, contiguous, and summing EXACTLY to end_ns - start_ns.

At (process P, time t) the walk takes P's latest wait that ended at or before t:
* everything after that wait's end is P's own work: ``run`` (or ``wait:child`` /
  ``wait:module`` while P is a helper its parent waited on);
* listener wait (first failure a, listen r, first ok o): [r, o] is ``wait:poll-lag`` (time lost
  to the retry interval); before r the path continues in the listener's process (its startup
  work is what the waiter waited for). Listener unknown: [a, r or o] is ``wait:listener`` and the
  walk goes on in P at a.
* poll wait (first attempt a, end e): with a known ready moment r, [r, e] is ``wait:poll-lag`` and
  the walk continues in the target at r; else [a, e] is ``wait:poll``. A poll with a listener part
  adds [o, e] ``wait:poll`` (listening but not ready) and [r, o] ``wait:poll-lag``.
* child wait: the path enters the child at its exit; its time is ``wait:child`` (``wait:module``
  for module helpers) until its start, where the walk returns to the parent.
With no wait left, P ran since its start: the walk moves to its parent at that moment (a spawn
edge), or stops at the start milestone. Time nobody can account for is ``wait:unknown``.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from tracer.analyzer.tree import Processes
from tracer.analyzer.waits import Wait

MAX_STEPS = 100_000


@dataclass
class Segment:
    start_ns: int
    end_ns: int
    kind: str
    label: str
    proc: int | None
    wait: int | None = None  # index into the waits list


class _Path:
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.cursor = end
        self.segs: list[Segment] = []

    def emit(
        self, lo: int, kind: str, label: str, proc: int | None, wait: int | None = None
    ) -> None:
        """Account [lo, cursor] (clipped at the start) and move the cursor back to lo."""
        lo = max(lo, self.start)
        if lo >= self.cursor:
            return
        self.segs.append(Segment(lo, self.cursor, kind, label, proc, wait))
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
    mode: dict[int, str] = {}

    proc = end_proc
    steps = 0
    while not path.done and proc is not None and steps < MAX_STEPS:
        steps += 1
        p = procs.procs[proc]
        own = mode.get(proc, "run")
        t = path.cursor
        w_idx = None
        if proc in ends:
            i = bisect.bisect_right(ends[proc], t) - 1
            while i >= 0 and by_waiter[proc][i][1] in used:
                i -= 1
            if i >= 0 and (p.start_ns is None or by_waiter[proc][i][0] >= p.start_ns):
                w_idx = by_waiter[proc][i][1]
        if w_idx is None:
            if p.start_ns is not None and p.start_ns > path.start:
                path.emit(p.start_ns, own, label(proc), proc)
                proc = p.parent
                if proc is None:
                    break
                continue
            path.emit(path.start, own, label(proc), proc)
            break
        used.add(w_idx)
        w = waits[w_idx]
        e = _edge_end(w)
        assert e is not None
        path.emit(e, own, label(proc), proc)
        proc = _follow_wait(path, w, w_idx, proc, procs, label, helper_kind, mode)
    if not path.done:
        path.emit(path.start, "wait:unknown", "not attributable to a process in the trace", None)
    segs = list(reversed(path.segs))
    return _merge(segs)


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
        ):
            out[-1].end_ns = s.end_ns
        else:
            out.append(s)
    return out
