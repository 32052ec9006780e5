"""The analyzer's passes: each a small function from the tables and the earlier passes' results
(held in :class:`Work`) to its own part. Their order is the list in tracer/analyzer/__init__.py.

Each pass fills the field of :class:`Work` named like it; the optional sections of the Analysis
(path_summary ... stacks) are the fields of the same name (None = left out of the JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc

from tracer._errors import UsageError
from tracer.analyzer import (
    blockers,
    critical_path,
    facts,
    modules,
    phases,
    profiles,
    schedpath,
    stacks,
    summary,
    tree,
    views,
    waits,
    wakewalk,
)
from tracer.analyzer import scope as scoping
from tracer.analyzer.model import (
    BlockersJson,
    CountsJson,
    CpuJson,
    EventViews,
    GroupJson,
    MilestoneJson,
    ModuleLoaderJson,
    PathSummaryJson,
    PhaseJson,
    ProcessJson,
    StacksJson,
    StateLanesJson,
    TraceFacts,
)
from tracer.analyzer.profiles import Profile
from tracer.analyzer.sched import SchedIndex
from tracer.analyzer.shape import proc_json, segments_json
from tracer.analyzer.stacks import SegmentComponents, StackIndex
from tracer.analyzer.tree import Processes
from tracer.analyzer.work import Bounds, SchedPath, Scope, Window, Work, reads
from tracer.schema import Trace

# -- the passes, in order ------------------------------------------------------------------


@reads("full")
def tree_pass(w: Work) -> Processes:
    """Process instances (pid-reuse safe) with their exec chains."""
    return tree.build(w.full)


@reads("full")
def bounds_pass(w: Work) -> Bounds:
    start = w.full.recorded.start_ns
    return Bounds(start, max(_trace_end(w.full), start))


@reads("full", "options", "procs")
def scope_pass(w: Work) -> Scope:
    """The recorded command's process tree, or everything."""
    root = _root_proc(w.procs, w.full.recorded.command_pid)
    mode = w.options.scope if w.options.scope != "auto" else ("tree" if root is not None else "all")
    if mode != "tree":
        return Scope(mode, root, None, w.full, w.full, {})
    if root is None:
        raise UsageError(
            "--scope tree needs a trace recorded with `record -- CMD` (its metadata has no "
            "command_pid); use --scope all"
        )
    members = scoping.tree_of(w.procs, root)
    trace, wait_view, row_maps = scoping.views(w.full, w.procs, members)
    return Scope(mode, root, members, trace, wait_view, row_maps)


@reads("options", "procs", "scope")
def profile_pass(w: Work) -> Profile:
    """Components, endpoints, milestones and phases as data (profiles.py)."""
    if w.options.profile != "auto":
        return profiles.load(w.options.profile)
    names: set[str] = set()
    for p in w.procs.procs:
        if w.scope.members is None or p.idx in w.scope.members:
            names.update(p.names)
    return profiles.detect(names)


@reads("full")
def schedix_pass(w: Work) -> SchedIndex | None:
    """The scheduler tables indexed by process (None without sched data: every pass that
    reads it then behaves exactly as before scheduler data existed)."""
    ix = SchedIndex.from_trace(w.full)
    return ix if ix.available else None


@reads("full", "procs", "profile")
def stackix_pass(w: Work) -> StackIndex | None:
    """The stack tables indexed, each stack named and given its component (stacks.py; None
    without stack tables: every pass that reads it then behaves as before stacks existed)."""
    return StackIndex.build(w.full, w.procs, w.profile)


@reads("bounds", "procs", "profile", "schedix", "scope", "stackix")
def waits_pass(w: Work) -> list[waits.Wait]:
    """Listener / poll / child / module wait-for edges of the processes in scope (child waits
    observed from wakeups with sched data: wakewalk.py); with stacks, connects are grouped by
    the component that made them too (two components of one process wait like any two)."""
    part = None
    if w.stackix is not None:
        part = _socket_components(w.stackix, w.scope.wait_view.table("socket"))
    answered = wakewalk.answers(w.schedix) if w.schedix is not None else None
    found = waits.find(w.scope.wait_view, w.procs, w.profile, w.bounds.end_ns, part, answered)
    if w.schedix is not None:
        found = wakewalk.observe_children(found, w.schedix, w.procs)
    if w.scope.members is not None:
        found = [x for x in found if x.waiter in w.scope.members]
        _remap_evidence(found, w.scope.row_maps)
    return found


@reads("procs", "scope", "waits")
def events_pass(w: Work) -> phases.Events:
    """Moment specs (COND syntax) answered over the scoped tables and the waits; a log line
    without a pid (the recorded command's output) belongs to the recorded command's tree."""
    owner = None
    if w.scope.root is not None:
        owner = _log_owner(w.procs, w.scope.root)
    return phases.Events(w.scope.trace, w.procs, w.waits, owner)


@reads("scope")
def cgroups_pass(w: Work) -> facts.Cgroups:
    return facts.cgroups(w.scope.trace)


@reads("bounds", "events", "options", "procs", "profile", "scope")
def window_pass(w: Work) -> Window:
    """The start and end milestones (options, else the profile's, else the defaults)."""
    prof, events, opts = w.profile, w.events, w.options
    root = w.scope.root
    start_ns, start_reached, start_by = w.bounds.start_ns, True, "trace start"
    if opts.start is not None:
        s = events.first([opts.start])
        start_reached = s is not None
        if s is not None:
            start_ns, start_by = s[1], opts.start
    else:
        s = events.first([str(x) for x in prof.entries("start")])
        if s is not None:
            start_ns, start_by = s[1], s[0]
        elif root is not None and w.procs.procs[root].execs:
            start_ns = int(w.procs.procs[root].execs[0]["ts_ns"])
            start_by = "first exec of the recorded command"

    end_ns: int | None = None
    end_proc: int | None = None
    end_by = ""
    if opts.end is not None:
        e = events.first([opts.end], at_or_after=start_ns)
        end_by = opts.end
        if e is not None:
            end_ns, end_proc = e[1], e[2]
    elif prof.entries("end"):
        found = [events.first([str(c)], at_or_after=start_ns) for c in prof.entries("end")]
        present = [f for f in found if f is not None]
        end_by = " / ".join(str(c) for c in prof.entries("end")) + (
            " (last present)" if prof.data.get("end_mode") == "last" else " (first)"
        )
        if present:
            pick = (max if prof.data.get("end_mode") == "last" else min)(
                present, key=lambda f: f[1]
            )
            end_ns, end_proc = pick[1], pick[2]
    else:
        end_proc, end_ns, end_by = _default_end(w.procs, root, w.bounds.end_ns)
    return Window(start_ns, start_reached, start_by, end_ns, end_proc, end_by)


@reads("bounds", "procs", "profile", "redact", "schedix", "waits", "window")
def path_pass(w: Work) -> list[critical_path.Segment]:
    """The critical path from the start to the end milestone (critical_path.py)."""
    win = w.window
    if not win.end_reached or win.end_ns is None:
        return []
    procs, prof, r = w.procs, w.profile, w.redact

    # a module helper's segment names what it loaded ("modprobe br_netfilter: loaded llc,
    # stp, bridge, br_netfilter"): one modprobe loads its whole dependency chain
    loaded: dict[int, list[str]] = {}
    for wt in w.waits:
        if wt.kind == "module" and wt.target is not None and wt.endpoint and \
                wt.reason.startswith("load"):
            loaded.setdefault(wt.target, []).append(wt.endpoint)

    def proc_label(idx: int) -> str:
        p = procs.procs[idx]
        args = r.argv(p.argv)[1:4] if p.argv else []
        tail = (" " + " ".join(args)) if args else ""
        mods = loaded.get(idx)
        if mods and prof.is_module_helper(p.names):
            tail += ": loaded " + ", ".join(mods)
        return r.text(f"{p.comm or '?'}{tail}")[:120]

    def helper_kind(idx: int) -> str:
        return "wait:module" if prof.is_module_helper(procs.procs[idx].names) else "wait:child"

    wake = None
    if w.schedix is not None:  # wait:wakeup edges (wakewalk.py)
        wake = wakewalk.WakeEdges(w.schedix, procs, w.bounds.start_ns, w.bounds.end_ns)
    return critical_path.walk(
        procs, w.waits, win.start_ns, win.end_ns, win.end_proc, proc_label, helper_kind, wake
    )


@reads("path", "procs", "schedix", "waits")
def sched_pass(w: Work) -> SchedPath:
    """Scheduler states of each run segment's process and of each poll/listener wait's target
    (schedpath.py); nothing when the trace has no sched rows."""
    ix = w.schedix
    if ix is None:
        return SchedPath(None, [None] * len(w.path))
    return SchedPath(ix, schedpath.path_states(ix, w.procs, w.path, w.waits))


@reads("path", "procs", "sched", "stackix", "waits")
def stackpath_pass(w: Work) -> list[SegmentComponents | None] | None:
    """With stacks: each critical-path segment's on-CPU ns of the same process as its states
    (or, without sched data, of the process schedpath would use) by component (stacks.py)."""
    if w.stackix is None:
        return None
    return stacks.path_components(w.stackix, w.procs, w.path, w.waits, w.sched.segments)


@reads("full", "procs", "stackix", "waits")
def wait_parts_pass(w: Work) -> list[tuple[str | None, str | None]] | None:
    """With stacks: each wait's waiter component (the stacks at its connects, or at the fork
    of a child wait's helper) and target component (the stacks at the listen / accepts)."""
    if w.stackix is None:
        return None
    return stacks.wait_components(w.stackix, w.full.table("socket"), w.procs, w.waits)


@reads("bounds", "path", "procs", "shown", "stackix", "stackpath", "window")
def stacks_pass(w: Work) -> StacksJson | None:
    """Optional section `stacks`: on-CPU samples by component over the analysis window, the
    folded stacks of the flame graph, a component lane per process, and the problems that make
    names partial (stacks.py); left out without stack tables."""
    ix = w.stackix
    if ix is None:
        return None
    lo, hi = w.window.span(w.bounds.end_ns)
    comm = {p.pid: p.comm for p in w.procs.procs if p.comm}
    shown = [p for p in w.procs.procs if w.shown is None or p.idx in w.shown]
    alive = [(p.pid, p.comm, p.key, p.start_ns if p.start_ns is not None else lo,
              p.end_ns if p.end_ns is not None else hi) for p in shown]
    segs = stacks.segment_flames(ix, comm, w.path, w.stackpath or [], w.procs)
    return stacks.section(ix, comm, lo, hi, alive, segs)


@reads("bounds", "procs", "sched", "window")
def cpu_pass(w: Work) -> CpuJson | None:
    """Optional section `cpu`: per-process on-CPU time over the analysis window and the
    machine's busy cores per 10 ms (null, so left out, without sched data)."""
    ix = w.sched.index
    if ix is None:
        return None
    lo, hi = w.window.span(w.bounds.end_ns)
    return schedpath.cpu_section(ix, w.procs, lo, hi)


@reads("bounds", "path", "procs", "schedix", "window")
def state_lanes_pass(w: Work) -> StateLanesJson | None:
    """Optional section `state_lanes`: the dominant scheduler state over time of the processes
    on the critical path (schedpath.state_lanes; the report's per-process lanes); left out
    without sched data or a critical path."""
    if w.schedix is None:
        return None
    lo, hi = w.window.span(w.bounds.end_ns)
    return schedpath.state_lanes(w.schedix, w.procs, w.path, lo, hi)


@reads("bounds", "full", "path", "procs", "sched", "schedix",
       "shown", "stackix", "stackpath", "window")
def blockers_pass(w: Work) -> BlockersJson | None:
    """Optional section `blockers`: fsync-family calls per process and the wakeup edges
    (waker -> woken) with the idle time they ended, longest first (blockers.py); left out
    without sched data."""
    if w.schedix is None:
        return None
    lo, hi = w.window.span(w.bounds.end_ns)
    pids = None if w.shown is None else {w.procs.procs[i].pid for i in w.shown}
    out = blockers.blockers(w.full.table("blockio"), w.full.table("wakeup"), w.procs, pids,
                            lo, hi, segments_json(w))
    if w.stackix is not None:
        stacks.fsync_components(w.stackix, w.full.table("blockio"), out, lo, hi)
    return out


@reads("bounds", "events", "procs", "profile", "redact", "scope", "window")
def milestones_pass(w: Work) -> list[MilestoneJson]:
    """Named moments: start, the profile's, first listens, new interfaces, end."""
    win, prof, events, text = w.window, w.profile, w.events, w.redact.text
    trace = w.scope.trace
    out: list[MilestoneJson] = []
    if win.start_reached:
        out.append(
            {
                "name": "start",
                "spec": text(win.start_by),
                "ts_ns": win.start_ns,
                "pid": None,
                "comm": None,
            }
        )
    for m in prof.entries("milestones"):
        occ = events.first([str(m["cond"])])
        if occ is not None:
            d = w.describe(occ)
            out.append({"name": text(str(m["name"])), "spec": d["spec"], "ts_ns": d["ts_ns"],
                        "pid": d["pid"], "comm": d["comm"], "key": d["key"]})
    if prof.data.get("listen_milestones"):
        for ep, ts, _row in phases.first_listens(trace):
            occ = events.first([f"listen-endpoint:{ep}"])
            pr = occ[2] if occ else None
            out.append(
                {
                    "name": text(f"listening {ep}"),
                    "spec": text(f"listen {ep}"),
                    "ts_ns": ts,
                    "pid": w.pid(pr),
                    "comm": w.comm(pr),
                    "key": w.key(pr),
                }
            )
    if prof.data.get("network_milestones"):
        for what, ifname, ts in phases.new_interfaces(trace, w.bounds.start_ns):
            out.append(
                {
                    "name": text(
                        f"{ifname} up" if what == "link-up" else f"{ifname} has an address"
                    ),
                    "spec": text(f"{what}:{ifname}"),
                    "ts_ns": ts,
                    "pid": None,
                    "comm": None,
                    "key": None,
                }
            )
    if win.end_reached and win.end_ns is not None:
        out.append(
            {
                "name": "end",
                "spec": text(win.end_by),
                "ts_ns": win.end_ns,
                "pid": w.pid(win.end_proc),
                "comm": w.comm(win.end_proc),
                "key": w.key(win.end_proc),
            }
        )
    out.sort(key=lambda m: (m["ts_ns"], m["name"]))
    return out


@reads("events", "procs", "profile", "redact")
def phases_pass(w: Work) -> list[PhaseJson]:
    """The profile's phases: durations between two moments, or why absent."""
    return phases.phase_list(w.events, w.profile.entries("phases"), w.describe)


@reads("path", "scope", "waits", "window")
def shown_pass(w: Work) -> set[int] | None:
    """Processes the analysis shows: the scope, plus whoever it waited for and whatever the path
    and the end went through (None: every process)."""
    members = w.scope.members
    if members is None:
        return None
    shown = set(members)
    for x in w.waits:
        shown.update(i for i in (x.waiter, x.target) if i is not None and i >= 0)
    shown.update(s.proc for s in w.path if s.proc is not None and s.proc >= 0)
    end_proc = w.window.end_proc
    if end_proc is not None and end_proc >= 0:
        shown.add(end_proc)
    return shown


@reads("cgroups", "procs", "profile", "redact", "scope", "shown", "stackix")
def processes_pass(w: Work) -> list[ProcessJson]:
    return [
        proc_json(w, p) for p in w.procs.procs if w.shown is None or p.idx in w.shown
    ]


@reads("full", "procs", "redact", "scope")
def module_loads_pass(w: Work) -> list[ModuleLoaderJson] | None:
    """Optional section `module_loads`: per loader (modprobe), the modules it loaded,
    dependencies included, with each load's exact duration (modules.py); left out when the
    trace has no module loads."""

    def command(idx: int) -> str:
        p = w.procs.procs[idx]
        return w.redact.text(" ".join(w.redact.argv(p.argv)) if p.argv else (p.comm or "?"))

    members = w.scope.members if w.scope.mode == "tree" else None
    return modules.loads_by_loader(w.full, w.procs, command, members) or None


@reads("path", "processes", "procs", "sched", "stackpath", "wait_parts", "window")
def path_summary_pass(w: Work) -> PathSummaryJson | None:
    """The critical path by executable and by component (optional section `path_summary`:
    null, so left out, without a critical path)."""
    segs = segments_json(w)
    parts = None
    if w.wait_parts is not None:
        parts = [None if s["wait"] is None else w.wait_parts[s["wait"]][0] for s in segs]
    return summary.summarize(segs, w.processes, w.window.total_ns, parts)


@reads("cgroups", "procs", "scope")
def groups_pass(w: Work) -> list[GroupJson]:
    """Per systemd unit / pod: processes, execs, connects, first and last activity."""
    return facts.groups(w.scope.trace, w.procs, w.cgroups, w.scope.members)


@reads("procs", "scope", "waits")
def counts_pass(w: Work) -> CountsJson:
    return facts.counts(w.scope.trace, w.procs, w.waits, w.scope.members)


@reads("bounds", "full", "redact")
def facts_pass(w: Work) -> TraceFacts:
    return facts.trace_facts(w.full, w.bounds.start_ns, w.bounds.end_ns, w.redact.argv)


@reads("bounds", "full", "processes", "redact", "scope", "window")
def views_pass(w: Work) -> Callable[[], EventViews]:
    """Every connect, listen, exec and module load of the processes shown, for the report:
    built when a reporter first asks (1M events: a few hundred MB `analyze` does not need)."""
    lo, hi = w.window.span(w.bounds.end_ns)
    full, processes, scoped, redact = w.full, w.processes, w.scope.mode == "tree", w.redact
    return lambda: views.build(full, processes, scoped, redact, lo, hi)


# -- helpers ---------------------------------------------------------------------------------


def _socket_components(ix: StackIndex, st: Any) -> Any:
    """Per socket row: the component code of the stack taken at it (-1: none)."""
    import numpy as np

    out = np.full(st.num_rows, -1, np.int64)
    cols = st.select(["kind", "tid", "ts_ns", "pid"]).to_pydict()
    for r, (kind, tid, ts, pid) in enumerate(
        zip(cols["kind"], cols["tid"], cols["ts_ns"], cols["pid"])
    ):
        if kind == "connect" and ts is not None:
            row = ix.event_row(kind, tid, int(ts), (pid,) if pid is not None else ())
            if row >= 0 and ix.named[row] >= 0:
                out[r] = int(ix.comp[row])
    return out


def _log_owner(procs: Processes, root: int) -> Callable[[int], int | None]:
    """ts -> the recorded command's process when alive then, else the alive process of its tree
    closest to it (fewest forks away, then earliest started), else the last of it to exit."""
    members = scoping.tree_of(procs, root)
    depth = {root: 0}
    for idx in sorted(members, key=lambda i: procs.procs[i].start_ns or 0):
        parent = procs.procs[idx].parent
        if idx != root and parent is not None:
            depth[idx] = depth.get(parent, 0) + 1

    def alive(idx: int, ts: int) -> bool:
        p = procs.procs[idx]
        return (p.start_ns is None or p.start_ns <= ts) and (p.end_ns is None or ts <= p.end_ns)

    def owner(ts: int) -> int | None:
        live = [i for i in members if alive(i, ts)]
        if live:
            return min(live, key=lambda i: (depth.get(i, 0), procs.procs[i].start_ns or 0, i))
        ended = [i for i in members if (procs.procs[i].end_ns or ts + 1) <= ts]
        if ended:
            return max(ended, key=lambda i: (procs.procs[i].end_ns or 0, -i))
        return root

    return owner


def _trace_end(trace: Trace) -> int:
    """The recorder's stop, else the last event in the trace."""
    meta = trace.recorded
    if meta.end_ns is not None and meta.end_ns > 0:
        return meta.end_ns
    last = meta.start_ns
    for name in ("process", "socket", "module", "log", "netlink"):
        t = trace.table(name)
        if t.num_rows:
            m = pc.max(t["ts_ns"]).as_py()
            if m is not None:
                last = max(last, int(m))
    return last


def _root_proc(procs: Processes, pid: int | None) -> int | None:
    """The instance of the command `record -- CMD` ran (meta command_pid)."""
    if pid is None:
        return None
    cands = [p for p in procs.procs if p.pid == pid and p.start_ns is not None]
    cands = cands or [p for p in procs.procs if p.pid == pid]
    return cands[0].idx if cands else None


def _remap_evidence(found: list[waits.Wait], row_maps: dict[str, Any]) -> None:
    """Evidence row numbers of a scoped view -> row numbers of the trace's own tables."""
    for x in found:
        for table, rows in x.evidence.items():
            m = row_maps.get(table)
            if m is not None:
                x.evidence[table] = [int(m[r]) for r in rows]


def _default_end(
    procs: Processes, root: int | None, trace_end: int
) -> tuple[int | None, int | None, str]:
    """generic: the recorded command's exit, else the last process exit, else the trace end."""
    if root is not None:
        r = procs.procs[root]
        if r.end_ns is not None:
            return root, r.end_ns, "exit of the recorded command"
        return root, trace_end, "trace end (the recorded command was still running)"
    exited = [p for p in procs.procs if p.end_ns is not None]
    if exited:
        last = max(exited, key=lambda p: p.end_ns or 0)
        return last.idx, last.end_ns, "last process exit in the trace"
    return None, trace_end, "trace end"
