"""Replay a recorded startup on its wait-for graph with changes applied.

Contract: ``predict(analysis, changes) -> Prediction``; ``suggest(analysis) -> list[Suggestion]``.
Pure functions of the :class:`~tracer.analyzer.model.Analysis` (its processes, waits, milestones,
phases and critical path): no trace tables, no clock.

The model is the one the critical path is walked on, run forwards:
* a process's timeline is cut by its waits (listener, poll, child: the critical path's edges);
  every moment of it is its latest wait's end (or its start) plus the process's own work since,
  which a ``faster`` change divides by its factor and ``remove`` makes zero (with the work of
  everything it started);
* a process starts when its parent forked it: the parent's moment at the recorded fork;
* a child wait ends when the child exits (never before the parent began waiting);
* a listener / poll wait with a known ready moment (the listen, or a profile's ready log line)
  ends at the waiter's first attempt at or after the (new) ready moment, on the loop's cadence
  (the recorded one, or a ``poll`` change's); the recorded loop calibrates where in its interval
  the ready moment fell, so a replay without changes is the recording;
* a wait whose cause the trace does not show (no ready moment, no target, a loop that went on
  after the listen while the service answered not-ready) keeps its recorded length: the
  prediction says so for each change it concerns, it does not guess;
* ``parallel:A,B`` cuts A's waits for B, and A's start when A's parent forked it right after
  waiting for B: A then starts as soon as its parent's own work allows.
Everything that had slack absorbs a change: only what a path waited on moves the end.
"""

from __future__ import annotations

import bisect
import fnmatch
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tracer._errors import UsageError
from tracer.analyzer.model import Analysis, WaitJson
from tracer.whatif.changes import Change, parse

#: the waits the critical path walks (module waits are inside their helper's child wait)
EDGE_KINDS = ("listener", "poll", "child")
MAX_STEPS = 100_000
#: a change predicting less than this is "no gain" (rounding of the cadence arithmetic)
NO_GAIN_NS = 1_000
#: suggestions: a process whose own work is at least this share of the path may be made faster
RUN_SHARE_FOR_SUGGESTION = 0.2
#: suggestions: how many
TOP = 5


@dataclass
class _Proc:
    key: str
    pid: int
    comm: str
    exe: str
    component: str | None
    parent: str | None
    start_ns: int | None
    end_ns: int | None


@dataclass
class _Wait:
    index: int  # into Analysis.waits
    kind: str
    waiter: str
    target: str | None
    begin_ns: int  # the first attempt (listener, poll) or the fork (child)
    end_ns: int  # the critical path's edge end
    ready_ns: int | None
    first_ok_ns: int | None
    interval_ns: int | None
    endpoint: str | None


@dataclass
class Segment:
    """One piece of the predicted critical path."""

    start_ns: int
    end_ns: int
    kind: str  # run | wait:child | wait:poll-lag | wait:poll | wait:unknown
    label: str
    key: str | None
    pid: int | None
    comm: str | None


@dataclass
class ChangeReport:
    """What one change did: what it touched, its gain alone, what it could not model."""

    change: str
    kind: str
    matched: list[str]
    gain_ns: int  # the change alone (recorded end - predicted end)
    not_modelled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class PhasePair:
    name: str
    recorded_ns: int
    predicted_ns: int


@dataclass
class Prediction:
    """The startup predicted with the changes applied, against the recorded one."""

    start_ns: int
    recorded_end_ns: int
    predicted_end_ns: int
    recorded_total_ns: int
    predicted_total_ns: int
    phases: list[PhasePair]
    critical_path: list[Segment]
    changes: list[ChangeReport]


@dataclass
class Suggestion:
    """A change worth trying, with its predicted effect on this trace."""

    change: str
    predicted_total_ns: int
    gain_ns: int
    why: str


class Graph:
    """The wait-for graph of one analysis: processes, their waits, the window."""

    def __init__(self, a: Analysis) -> None:
        if not a.end_reached or a.end_ns is None:
            raise UsageError("what-if needs a trace whose end milestone was reached "
                             f"({a.end_by or 'end'} never happened): there is no path to change")
        self.analysis = a
        self.start_ns = a.start_ns
        self.end_ns = a.end_ns
        self.procs: dict[str, _Proc] = {}
        for pj in a.processes:
            self.procs[pj["key"]] = _Proc(
                key=pj["key"], pid=pj["pid"], comm=pj.get("comm") or "?",
                exe=os.path.basename(pj.get("exe") or ""), component=pj.get("component"),
                parent=pj.get("parent_key"), start_ns=pj.get("start_ns"),
                end_ns=pj.get("end_ns"))
        self.children: dict[str, list[str]] = defaultdict(list)
        for p in self.procs.values():
            if p.parent is not None and p.parent in self.procs:
                self.children[p.parent].append(p.key)
        self.waits: list[_Wait] = []
        for i, w in enumerate(a.waits):
            ww = _edge(i, w)
            if ww is not None and ww.waiter in self.procs:
                self.waits.append(ww)
        self.by_waiter: dict[str, list[_Wait]] = defaultdict(list)
        for ww in self.waits:
            p = self.procs[ww.waiter]
            if p.start_ns is None or ww.end_ns >= p.start_ns:
                self.by_waiter[ww.waiter].append(ww)
        self.ends: dict[str, list[int]] = {}
        for k, v in self.by_waiter.items():
            v.sort(key=lambda x: (x.end_ns, x.index))
            self.ends[k] = [x.end_ns for x in v]
        end_key = None
        for m in a.milestones:
            if m.get("name") == "end":
                end_key = m.get("key")
        self.end_key = end_key if end_key in self.procs else None
        #: the end milestone's process and its ancestors: what cannot be removed
        self.end_line: set[str] = set()
        up = self.end_key
        while up is not None and up in self.procs and up not in self.end_line:
            self.end_line.add(up)
            up = self.procs[up].parent
        #: ns of the recorded critical path per process key (for "slack" notes, suggestions)
        self.on_path: dict[str, int] = defaultdict(int)
        for s in a.critical_path:
            if s.get("key"):
                self.on_path[str(s["key"])] += s["end_ns"] - s["start_ns"]
        #: comm / executable / component -> process keys (a selector without a glob is a
        #: lookup here: suggest() names hundreds of candidates on a large trace, and matching
        #: each against every process was most of a report's time)
        self._by_name: dict[str, set[str]] = defaultdict(set)
        self._by_pid: dict[int, set[str]] = defaultdict(set)
        for k, p in self.procs.items():
            self._by_pid[p.pid].add(k)
            for known_as in (p.comm, p.exe, p.component or ""):
                if known_as:
                    self._by_name[known_as].add(k)
        self._selected: dict[str, frozenset[str]] = {}
        #: the waits in the order a replay computes them (recorded end: shallow recursion)
        self.in_end_order = sorted(self.waits, key=lambda x: x.end_ns)
        #: who reads what, for replaying only what a change can move (_reverse_inputs)
        self._dependents: tuple[dict[int, list[int]], dict[str, list[int]]] | None = None

    def affected(self, procs: set[str], waits: set[int]) -> set[int]:
        """The waits whose replayed end can differ once the timelines of `procs` and the
        waits `waits` change: those, and everything that reads them, transitively. A
        superset (each wait's inputs are taken from every branch the replay could take)."""
        if self._dependents is None:
            self._dependents = self._reverse_inputs()
        by_wait, by_proc = self._dependents
        todo = list(waits)
        for k in procs:
            todo += by_proc.get(k, ())
        out: set[int] = set()
        while todo:
            i = todo.pop()
            if i not in out:
                out.add(i)
                todo += by_wait.get(i, ())
        return out

    def _reverse_inputs(self) -> tuple[dict[int, list[int]], dict[str, list[int]]]:
        """wait -> the waits reading its end; process -> the waits reading one of its moments
        (its own work, its start). _Scenario.end reads the waiter's moment at the wait's
        begin and the target's at its ready moment or end; a moment reads the process's
        latest wait before it, else its start, which reads the parent's moment at the fork."""
        start_memo: dict[str, tuple[set[str], set[int]]] = {}

        def start_inputs(key: str) -> tuple[set[str], set[int]]:
            got = start_memo.get(key)
            if got is None:
                start_memo[key] = got = ({key}, set())  # (a cycle ends here)
                p = self.procs[key]
                if p.start_ns is not None and p.parent in self.procs and \
                        p.start_ns >= self.start_ns:
                    assert p.parent is not None
                    ps, ws = moment_inputs(p.parent, p.start_ns, None)
                    got = start_memo[key] = (ps | {key}, ws)
            return got

        def moment_inputs(key: str | None, t: int, exclude: int | None,
                          ) -> tuple[set[str], set[int]]:
            if key is None or key not in self.procs:
                return set(), set()
            a = self.anchor(key, t, exclude)
            if a is not None:
                return {key}, {a.index}
            return start_inputs(key)

        by_wait: dict[int, list[int]] = defaultdict(list)
        by_proc: dict[str, list[int]] = defaultdict(list)
        for w in self.waits:
            procs, waits = moment_inputs(w.waiter, w.begin_ns, w.index)
            procs, waits = set(procs), set(waits)
            for t in (w.ready_ns, w.end_ns):
                if t is not None:
                    ps, ws = moment_inputs(w.target, t, None)
                    procs |= ps
                    waits |= ws
            for i in waits:
                by_wait[i].append(w.index)
            for k in procs:
                by_proc[k].append(w.index)
        return by_wait, by_proc

    def anchor(self, key: str, t: int, exclude: int | None = None) -> _Wait | None:
        """The process's latest wait that ended at or before t (its own work since)."""
        ends = self.ends.get(key)
        if not ends:
            return None
        i = bisect.bisect_right(ends, t) - 1
        ws = self.by_waiter[key]
        while i >= 0 and ws[i].index == exclude:
            i -= 1
        return ws[i] if i >= 0 else None

    def descendants(self, keys: Iterable[str]) -> set[str]:
        out: set[str] = set()
        todo = list(keys)
        while todo:
            k = todo.pop()
            if k in out:
                continue
            out.add(k)
            todo += self.children.get(k, [])
        return out

    def label(self, key: str | None) -> str:
        if key is None or key not in self.procs:
            return "?"
        p = self.procs[key]
        return f"{p.comm}[{p.pid}]"

    # -- selectors -------------------------------------------------------------------------

    def select(self, selector: str) -> set[str]:
        """Process keys a selector names (UsageError when it names nothing in the trace)."""
        got = self._selected.get(selector)
        if got is None:
            got = self._selected[selector] = frozenset(self._select(selector))
        return set(got)

    def _select(self, selector: str) -> set[str]:
        sel = selector.strip()
        keys: set[str]
        if sel in self.procs:
            keys = {sel}
        elif sel.isdigit():
            keys = set(self._by_pid.get(int(sel), ()))
        elif sel == "wait:child":
            keys = {w.target for w in self.waits if w.kind == "child" and w.target}
        elif sel == "wait:module":
            keys = {str(s["key"]) for s in self.analysis.critical_path
                    if s["kind"] == "wait:module" and s.get("key")}
            keys |= {w.target for w in self.waits if w.kind == "child" and w.target
                     and self.procs[w.target].comm in ("modprobe", "insmod")}
        else:
            name = sel.removeprefix("component:")
            if any(c in name for c in "*?["):
                keys = {k for k, p in self.procs.items()
                        if any(fnmatch.fnmatchcase(v, name)
                               for v in (p.comm, p.exe, p.component or "") if v)}
            else:  # no glob: fnmatchcase is equality
                keys = set(self._by_name.get(name, ()))
        keys = {k for k in keys if k in self.procs}  # (a wait's target may be outside them)
        if not keys:
            names = sorted({self.procs[k].comm for k in self.on_path if k in self.procs})
            raise UsageError(f"unknown selector {selector!r}: no process, executable or component "
                             "of that name in this trace (on the path: "
                             f"{', '.join(names) or 'nothing'})")
        return keys

    def polled(self, endpoint: str) -> list[_Wait]:
        """The listener / poll waits on an endpoint as the analysis prints it (UsageError)."""
        want = endpoint.strip()
        out = [w for w in self.waits if w.kind in ("listener", "poll") and w.endpoint
               and (w.endpoint == want or w.endpoint == f"unix:{want}"
                    or w.endpoint.rsplit(":", 1)[-1] == want)]
        if not out:
            eps = sorted({w.endpoint for w in self.waits if w.kind in ("listener", "poll")
                          and w.endpoint})
            raise UsageError(f"unknown endpoint {endpoint!r}: no poll or retry loop to it in this "
                             f"trace (polled: {', '.join(eps) or 'none'})")
        return out


def _edge(i: int, w: WaitJson) -> _Wait | None:
    kind = w["kind"]
    if kind not in EDGE_KINDS or w.get("waiter") is None:
        return None
    waiter = w["waiter"]
    target = w.get("target")
    end = {"listener": w.get("first_ok_ns"), "poll": w.get("ended_ns"),
           "child": w.get("end_ns")}[kind]
    if end is None or waiter is None:
        return None
    begin = w.get("first_attempt_ns") or w["start_ns"]
    return _Wait(index=i, kind=kind, waiter=waiter["key"],
                 target=target["key"] if target else None, begin_ns=begin, end_ns=end,
                 ready_ns=w.get("ready_ns"), first_ok_ns=w.get("first_ok_ns"),
                 interval_ns=w.get("interval_ns"), endpoint=w.get("endpoint"))


class _Scenario:
    """The graph with a set of changes: new times of moments, memoised."""

    def __init__(self, g: Graph, changes: Sequence[Change]) -> None:
        self.g = g
        self.factor: dict[str, float] = {}
        removed: set[str] = set()
        self.interval: dict[int, int] = {}  # wait index -> new interval
        self.cut: set[int] = set()  # wait indices A no longer waits on
        self.cut_spawn: dict[str, _Wait] = {}  # process -> the parent's wait it no longer follows
        self.reports: list[ChangeReport] = []
        for c in changes:
            self.reports.append(self._apply(c, removed))
        self.removed = g.descendants(removed)
        self.end_memo: dict[int, int] = {}
        self.cause: dict[int, tuple[str, int]] = {}  # wait -> (child|ready|own|cut, moment)
        self.busy: set[int] = set()

    def _apply(self, c: Change, removed: set[str]) -> ChangeReport:
        g = self.g
        rep = ChangeReport(change=c.text, kind=c.kind, matched=[], gain_ns=0)
        if c.kind == "poll":
            assert c.endpoint is not None and c.interval_ns is not None
            ws = g.polled(c.endpoint)
            for w in ws:
                self.interval[w.index] = c.interval_ns
                rep.matched.append(f"{g.label(w.waiter)} -> {w.endpoint}")
                if w.ready_ns is None or w.target is None:
                    rep.not_modelled.append(
                        f"{g.label(w.waiter)} polling {w.endpoint}: the trace does not show when "
                        "it became ready; the loop keeps its recorded length")
                elif w.kind == "poll" and w.first_ok_ns is not None and w.end_ns > w.first_ok_ns:
                    rep.not_modelled.append(
                        f"{g.label(w.waiter)} polling {w.endpoint}: after the listen it answered "
                        f"not-ready for {(w.end_ns - w.first_ok_ns) / 1e6:,.1f} ms, for a reason "
                        "the trace does not show; that part keeps its recorded length")
            return rep
        assert c.selector is not None
        keys = g.select(c.selector)
        rep.matched = sorted(g.label(k) for k in keys)
        if c.kind == "faster":
            assert c.factor is not None
            for k in keys:
                self.factor[k] = self.factor.get(k, 1.0) * c.factor
        elif c.kind == "remove":
            ends = keys & g.end_line
            if ends:
                raise UsageError(
                    f"{c.text} would remove {g.label(min(ends))}, the end milestone's process or "
                    "one of its ancestors: nothing would be left to predict (name the helper by "
                    "its pid or PID@START key instead)")
            removed |= keys
        else:
            assert c.other is not None
            others = g.descendants(g.select(c.other))
            rep.matched.append("no longer waiting for " + ", ".join(
                sorted(g.label(k) for k in g.select(c.other))))
            n = 0
            for w in g.waits:
                if w.waiter in keys and w.target in others:
                    self.cut.add(w.index)
                    n += 1
            for k in keys:
                p = g.procs[k]
                if p.parent is None or p.start_ns is None or p.parent not in g.procs:
                    continue
                sw = g.anchor(p.parent, p.start_ns)
                if sw is not None and (sw.target in others or sw.index in self.cut):
                    self.cut_spawn[k] = sw
                    n += 1
            if n == 0:
                rep.notes.append(f"nothing to cut: {c.selector} neither waited for {c.other} nor "
                                 f"was started right after its parent waited for it")
        waited_on = keys if c.kind != "parallel" else set()
        for w in g.waits:
            if w.kind != "child" and w.target in waited_on and w.ready_ns is None:
                rep.not_modelled.append(
                    f"{g.label(w.waiter)} polling {w.endpoint}: the trace does not show when "
                    f"{g.label(w.target)} became ready; that wait keeps its recorded length")
            elif w.kind == "poll" and w.target in waited_on and w.first_ok_ns is not None \
                    and w.end_ns > w.first_ok_ns:
                rep.not_modelled.append(
                    f"{g.label(w.waiter)} polling {w.endpoint}: {g.label(w.target)} answered "
                    f"not-ready for {(w.end_ns - w.first_ok_ns) / 1e6:,.1f} ms after its listen, "
                    "for a reason the trace does not show; that part keeps its recorded length")
        return rep

    # -- new times ---------------------------------------------------------------------------

    def start(self, key: str) -> int:
        p = self.g.procs[key]
        if p.start_ns is None or p.parent not in self.g.procs or p.start_ns < self.g.start_ns:
            return max(p.start_ns or self.g.start_ns, self.g.start_ns)
        assert p.parent is not None
        w = self.cut_spawn.get(key)
        if w is not None:
            begin = self.at(w.waiter, w.begin_ns, exclude=w.index)
            return begin + self._own(w.waiter, p.start_ns - w.end_ns)
        return self.at(p.parent, p.start_ns)

    def _own(self, key: str, ns: float) -> int:
        if key in self.removed:
            return 0
        return round(ns / self.factor.get(key, 1.0))

    def at(self, key: str | None, t: int, exclude: int | None = None) -> int:
        """The new time of the recorded moment t of process key."""
        g = self.g
        if key is None or key not in g.procs:
            return t
        p = g.procs[key]
        if key in self.removed:
            return self.start(key)
        w = g.anchor(key, t, exclude)
        if w is not None:
            return self.end(w) + self._own(key, t - w.end_ns)
        base = max(p.start_ns if p.start_ns is not None else g.start_ns, g.start_ns)
        if t <= base and (p.start_ns is None or p.start_ns < g.start_ns):
            return t  # before the window, in a process that was there already: fixed
        return self.start(key) + self._own(key, t - base)

    def end(self, w: _Wait) -> int:
        """The new end of a wait (memoised; its cause kept for the path)."""
        if w.index in self.end_memo:
            return self.end_memo[w.index]
        if w.index in self.busy:  # a cycle the recording cannot have: keep it as recorded
            return w.end_ns
        self.busy.add(w.index)
        begin = self.at(w.waiter, w.begin_ns, exclude=w.index)
        if w.index in self.cut:
            new, cause = begin, ("cut", begin)
        elif w.kind == "child":
            assert w.target is not None
            x = self.at(w.target, w.end_ns) if w.target in self.g.procs else \
                begin + (w.end_ns - w.begin_ns)
            new, cause = (x, ("child", x)) if x >= begin else (begin, ("own", begin))
        elif w.ready_ns is not None and w.target is not None and w.target in self.g.procs:
            ready_new = self.at(w.target, w.ready_ns)
            noticed = w.end_ns if w.first_ok_ns is None or w.kind == "listener" else w.first_ok_ns
            new = _notice(begin, w.begin_ns, noticed, w.ready_ns, ready_new,
                          w.interval_ns, self.interval.get(w.index))
            cause = ("ready", ready_new)
            if noticed != w.end_ns:  # answered not-ready after the listen: kept as recorded
                cause = ("ready+kept", ready_new)
                new += w.end_ns - noticed
        else:
            new = begin + (w.end_ns - w.begin_ns)
            cause = ("own", begin)
        self.busy.discard(w.index)
        self.end_memo[w.index] = new
        self.cause[w.index] = cause
        return new

    def warm(self) -> None:
        """Compute wait ends in recorded order, so the recursion stays shallow."""
        for w in self.g.in_end_order:
            self.end(w)

    def warm_from(self, base: _Scenario) -> None:
        """warm(), computing only the waits these changes can move: the others' ends are
        the unchanged replay's (`base`, warmed). suggest() replays hundreds of single
        changes, each touching a few processes, on a graph of thousands of waits."""
        g = self.g
        moved = g.affected(set(self.factor) | self.removed | set(self.cut_spawn),
                           self.cut | set(self.interval))
        self.end_memo = {i: v for i, v in base.end_memo.items() if i not in moved}
        for w in g.in_end_order:
            if w.index in moved:
                self.end(w)

    # -- the new path ------------------------------------------------------------------------

    def path(self, end_key: str | None, end_old: int, start_new: int) -> list[Segment]:
        g = self.g
        segs: list[Segment] = []
        cursor = self.at(end_key, end_old)
        key, t_old = end_key, end_old
        helper: set[str] = set()

        def emit(lo: int, kind: str, label: str, k: str | None) -> None:
            nonlocal cursor
            lo = max(lo, start_new)
            if lo >= cursor:
                return
            p = g.procs.get(k) if k else None
            segs.append(Segment(lo, cursor, kind, label, k, p.pid if p else None,
                                p.comm if p else None))
            cursor = lo

        steps = 0
        while cursor > start_new and steps < MAX_STEPS:
            steps += 1
            if key is None or key not in g.procs:
                emit(start_new, "wait:unknown", "not attributable to a process in the trace", None)
                break
            own_kind = "wait:child" if key in helper else "run"
            w = None if key in self.removed else g.anchor(key, t_old)
            if w is None:
                p = g.procs[key]
                s = self.start(key)
                emit(s, own_kind, g.label(key), key)
                if p.start_ns is None or p.parent not in g.procs or p.start_ns < g.start_ns:
                    emit(start_new, own_kind, g.label(key), key)
                    break
                cw = self.cut_spawn.get(key)
                if cw is not None:  # started beside what its parent waited for
                    key, t_old = cw.waiter, cw.begin_ns
                    emit(self.at(key, t_old, exclude=cw.index), "run", g.label(key), key)
                else:
                    key, t_old = p.parent, p.start_ns
                continue
            e = self.end(w)
            emit(e, own_kind, g.label(key), key)
            what, moment = self.cause.get(w.index, ("own", e))
            ep = w.endpoint or "?"
            if what == "child" and w.target is not None:
                helper.add(w.target)
                key, t_old = w.target, w.end_ns
                continue
            if what in ("ready", "ready+kept") and w.target is not None and w.ready_ns is not None:
                iv = self.interval.get(w.index, w.interval_ns)
                if what == "ready+kept" and w.first_ok_ns is not None:
                    kept = w.end_ns - w.first_ok_ns
                    emit(e - kept, "wait:poll", f"polling {ep}: answering, not ready yet "
                         "(kept as recorded)", key)
                emit(moment, "wait:poll-lag", f"{ep} ready; noticed at the next attempt (every "
                     f"{_ms(iv)})", key)
                key, t_old = w.target, w.ready_ns
                continue
            begin = self.at(w.waiter, w.begin_ns, exclude=w.index)
            if what == "own" and w.kind != "child":
                emit(begin, "wait:poll", f"waiting for {ep} (ready moment not in the trace; "
                     "kept as recorded)", key)
            t_old = w.begin_ns
        if cursor > start_new:
            emit(start_new, "wait:unknown", "not attributable to a process in the trace", None)
        segs.reverse()
        merged: list[Segment] = []
        for seg in segs:  # a process's own work split only by a wait that ended at once
            last = merged[-1] if merged else None
            if last is not None and (last.kind, last.key, last.label) == \
                    (seg.kind, seg.key, seg.label) and last.end_ns == seg.start_ns:
                last.end_ns = seg.end_ns
            else:
                merged.append(seg)
        return merged


def _notice(begin_new: int, begin_old: int, noticed_old: int, ready_old: int, ready_new: int,
            interval_ns: int | None, new_interval: int | None) -> int:
    """When a retry loop starting at begin_new notices a ready moment at ready_new.

    The recorded loop (begin_old .. noticed_old, noticed at attempt k) places the ready moment
    between its attempts k-1 and k; that placement (not the raw stamp of a listen or log line,
    which may be a little off) is what moves with the ready moment."""
    span = noticed_old - begin_old
    iv = interval_ns if interval_ns and interval_ns > 0 else span
    if iv <= 0:
        return max(begin_new, begin_new + (ready_new - ready_old))
    k_old = round(span / iv)
    period = span / k_old if k_old >= 1 else float(iv)
    if k_old >= 1:
        lo, hi = begin_old + (k_old - 1) * period + 1, float(noticed_old)
        ready_eff = min(max(float(ready_old), lo), hi)
    else:
        ready_eff = float(min(ready_old, begin_old))
    ready_eff += ready_new - ready_old
    cadence = float(new_interval) if new_interval else period
    k = max(0, math.ceil((ready_eff - begin_new) / cadence - 1e-9))
    return begin_new + round(k * cadence)


def _ms(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e6:,.0f} ms"


def _run(g: Graph, changes: Sequence[Change],
         base: _Scenario | None = None) -> tuple[_Scenario, int, int]:
    """Replay with the changes: (the scenario, new start, new end). With `base` (the warmed
    replay without changes) only what the changes can move is recomputed."""
    sc = _Scenario(g, changes)
    if base is None:
        sc.warm()
    else:
        sc.warm_from(base)
    start_new = g.start_ns
    end_new = sc.at(g.end_key, g.end_ns)
    return sc, start_new, max(end_new, start_new)


def predict(a: Analysis, changes: Sequence[Change | str]) -> Prediction:
    """The startup with the changes applied (UsageError for a change naming nothing)."""
    g = Graph(a)
    parsed = [c if isinstance(c, Change) else parse(c) for c in changes]
    sc, start_new, end_new = _run(g, parsed)
    for rep, c in zip(sc.reports, parsed):
        _, _, alone = _run(g, [c])
        rep.gain_ns = g.end_ns - alone
        if abs(rep.gain_ns) < NO_GAIN_NS:
            rep.notes.append(_no_gain_reason(g, _Scenario(g, [c])))
    phases = []
    for ph in a.phases:
        se, ee, dur = ph["start_event"], ph["end_event"], ph["duration_ns"]
        if se is None or ee is None or dur is None:
            continue
        s = sc.at(se["key"], se["ts_ns"])
        e = sc.at(ee["key"], ee["ts_ns"])
        phases.append(PhasePair(ph["name"], dur, e - s))
    return Prediction(
        start_ns=g.start_ns, recorded_end_ns=g.end_ns, predicted_end_ns=end_new,
        recorded_total_ns=g.end_ns - g.start_ns, predicted_total_ns=end_new - start_new,
        phases=phases, critical_path=sc.path(g.end_key, g.end_ns, start_new),
        changes=sc.reports)


def _no_gain_reason(g: Graph, sc: _Scenario) -> str:
    touched = set(sc.factor) | sc.removed | set(sc.cut_spawn)
    touched |= {w.waiter for w in g.waits if w.index in sc.cut or w.index in sc.interval}
    on = sum(g.on_path.get(k, 0) for k in touched)
    if on == 0:
        return ("no gain: nothing it changes is on the critical path (slack: what it touches "
                "finished before anything on the path needed it)")
    return (f"no gain: it touches {on / 1e6:,.1f} ms of the path, but what waited on that work "
            "still noticed it at the same attempt of its retry loop (the cadence absorbs it)")


def suggest(a: Analysis) -> list[Suggestion]:
    """The changes with the largest predicted gain on this trace (at most TOP)."""
    g = Graph(a)
    out = []
    base = _Scenario(g, [])
    base.warm()
    for text, why in candidates(g).items():
        try:
            _, s_new, e_new = _run(g, [parse(text)], base)
        except UsageError:
            continue  # a name that is not a usable selector (e.g. a comm with a ':')
        gain = g.end_ns - e_new
        if gain >= NO_GAIN_NS:
            out.append(Suggestion(text, e_new - s_new, gain, why))
    out.sort(key=lambda x: (-x.gain_ns, x.change))
    return out[:TOP]


def candidates(g: Graph) -> dict[str, str]:
    """The single changes suggest() tries, each with why it is worth trying: a faster poll on
    the path's poll lags, the path's helpers gone / faster / started beside the helper before
    them, and any other process with a large share of the path twice as fast."""
    a = g.analysis
    total = g.end_ns - g.start_ns
    cands: dict[str, str] = {}
    for s in a.critical_path:
        wi = s.get("wait")
        wj = a.waits[wi] if wi is not None else None
        if s["kind"] == "wait:poll-lag" and wj is not None and wj.get("endpoint") and \
                wj.get("interval_ns"):
            iv = max(1, round((wj["interval_ns"] or 0) / 4e6))
            cands[f"poll:{wj['endpoint']}={iv}ms"] = (
                f"retry {wj['endpoint']} every {iv} ms instead of {_ms(wj['interval_ns'])}")
    helpers = {x.target for x in g.waits if x.kind == "child" and x.target in g.procs}

    def name(key: str, meant: set[str]) -> str:
        """The comm when it names exactly what is meant, else the pid (or PID@START key)."""
        comm = g.procs[key].comm
        try:
            if g.select(comm) <= meant and ":" not in comm and "," not in comm:
                return comm
        except UsageError:
            pass
        pid = str(g.procs[key].pid)
        return pid if g.select(pid) == {key} else key

    for key, ns in g.on_path.items():
        p = g.procs.get(key)
        if p is None:
            continue
        if key in helpers:
            same = {k for k in helpers if g.procs[k].comm == p.comm}
            n = name(key, same)
            # only a helper that is pure work of its own is suggested gone: one that waited for
            # something (or started others) is a part of the startup, not a removable step
            if not g.by_waiter.get(key) and not g.children.get(key) and \
                    not (g.select(n) & g.end_line):
                cands[f"remove:{n}"] = f"{p.comm} not run at all"
            cands[f"faster:{n}=2"] = f"{p.comm} twice as fast"
            w = g.anchor(p.parent, p.start_ns) if p.parent and p.start_ns is not None else None
            wt = w.target if w is not None else None
            if wt is not None and wt != p.parent and wt in helpers:
                other = g.procs[wt]
                if other.comm != p.comm:
                    m = name(wt, {k for k in helpers if g.procs[k].comm == other.comm})
                    cands[f"parallel:{n},{m}"] = f"{p.comm} started beside {other.comm}"
        elif ns >= RUN_SHARE_FOR_SUGGESTION * total:
            cands[f"faster:{name(key, {key})}=2"] = f"{p.comm}[{p.pid}]'s own work twice as fast"
    return cands
