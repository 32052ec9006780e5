"""The analyzer: what a startup WAITED on, and its exact critical path.

``analyze(trace)`` runs the passes below, in order, over the trace's Arrow tables (no BCC, no
root, no clock) and returns one typed :class:`~tracer.analyzer.model.Analysis`: the JSON of
`analyze --json` (docs/analyze.md) plus the scoped, redacted event views reporters draw.
``load_and_analyze(trace_dir, options)`` is the one load -> analyze every caller uses.

Each pass is a function of :class:`~tracer.analyzer.work.Work` (the tables, the options and
the earlier passes' results) returning its own part, declared with the Work fields it reads
(``@reads(...)``, passes.py). A new pass is one function plus one line in PASSES, its result a
field of Work (and, for an optional section, of Analysis) of its name.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tracer.analyzer import passes as p
from tracer.analyzer import shape
from tracer.analyzer.model import ANALYSIS_VERSION, Analysis
from tracer.analyzer.work import Options, Pass, Redactor, Work
from tracer.schema import Trace

__all__ = ["ANALYSIS_VERSION", "PASSES", "Analysis", "Options", "analyze", "folded_stacks",
           "load_and_analyze"]

#: (name, pass) in the order they run: each pass writes the Work field of its name and reads only
#: the inputs and the results of the passes above it (its @reads; tests/unit/test_passes_order.py).
PASSES: tuple[tuple[str, Pass[Any]], ...] = (
    ("procs", p.tree_pass),  # process instances with exec chains (tree.py)
    ("bounds", p.bounds_pass),  # the recording's span
    ("scope", p.scope_pass),  # the recorded command's tree, or everything (scope.py)
    ("profile", p.profile_pass),  # components, endpoints, milestones (profiles.py)
    ("schedix", p.schedix_pass),  # sched/wakeup tables indexed (sched.py; record --sched)
    ("stackix", p.stackix_pass),  # stacks named, with components (stacks.py; schema 1.3)
    ("waits", p.waits_pass),  # listener / poll / child / module waits (waits.py, polls.py)
    ("events", p.events_pass),  # moment specs over the scoped tables (phases.py)
    ("cgroups", p.cgroups_pass),  # cgroup -> unit / pod
    ("window", p.window_pass),  # start and end milestones
    ("path", p.path_pass),  # critical path from start to end (critical_path.py)
    ("sched", p.sched_pass),  # scheduler states on the path (schedpath.py; needs record --sched)
    ("stackpath", p.stackpath_pass),  # on-CPU components per segment (stacks.py; stacks)
    ("wait_parts", p.wait_parts_pass),  # waiter / target components of each wait (stacks)
    ("milestones", p.milestones_pass),
    ("phases", p.phases_pass),
    ("shown", p.shown_pass),  # the processes the analysis shows
    ("processes", p.processes_pass),
    ("path_summary", p.path_summary_pass),  # the path by executable / component (summary.py)
    ("module_loads", p.module_loads_pass),  # modules per modprobe, with durations (modules.py)
    ("cpu", p.cpu_pass),  # per-process CPU, busy cores (schedpath.py; needs record --sched)
    ("state_lanes", p.state_lanes_pass),  # per-process state lanes (schedpath.py; --sched)
    ("blockers", p.blockers_pass),  # fsync totals, wakeup edges (blockers.py; record --sched)
    ("stacks", p.stacks_pass),  # samples by component, flame graph, lanes (stacks.py; stacks)
    ("groups", p.groups_pass),  # per systemd unit / pod
    ("counts", p.counts_pass),
    ("facts", p.facts_pass),  # the trace's own facts (meta, k3s version)
    ("views", p.views_pass),  # per-event detail for reporters (views.py)
)

def analyze(
    trace: Trace,
    *,
    profile: str = "auto",
    start: str | None = None,
    end: str | None = None,
    redact: bool = True,
    scope: str = "auto",
) -> Analysis:
    """Analyze a loaded trace (the options are those of :class:`Options`)."""
    return run(trace, Options(profile=profile, start=start, end=end, redact=redact, scope=scope))


def run(trace: Trace, options: Options) -> Analysis:
    """Run PASSES over the trace and assemble the Analysis."""
    options.check()
    with gc_paused():
        w = Work(full=trace, options=options, redact=Redactor(options.redact))
        for name, fn in PASSES:
            setattr(w, name, fn(w))
        return _assemble(w)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: the passes allocate millions of small objects that
    all live until the Analysis is built (rows, process instances, JSON dicts), so every full
    collection walks them all and frees nothing; at 1M events that was seconds of the run."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_and_analyze(trace_dir: str | os.PathLike[str], options: Options) -> Analysis:
    """Load the trace at trace_dir and analyze it: the one way every command, the demo and boot
    get an Analysis (TraceError for an unreadable trace, UsageError for a bad option)."""
    from tracer import schema

    options.check()  # a bad option is reported before a big trace is read
    return run(schema.load(Path(trace_dir)), options)


def _assemble(w: Work) -> Analysis:
    win = w.window
    return Analysis(
        analysis_version=ANALYSIS_VERSION,
        profile=w.profile.name,
        start_ns=win.start_ns,
        end_ns=win.end_ns if win.end_reached else None,
        total_ns=win.total_ns,
        start_reached=win.start_reached,
        end_reached=win.end_reached,
        start_by=w.redact.text(win.start_by),
        end_by=w.redact.text(win.end_by),
        critical_path=shape.segments_json(w),
        waits=[shape.wait_json(w, x, k) for k, x in enumerate(w.waits)],
        milestones=w.milestones,
        phases=w.phases,
        counts=w.counts,
        lost_events=w.full.lost_events,
        processes=w.processes,
        groups=w.groups,
        scope=shape.scope_json(w),
        trace=w.facts,
        path_summary=w.path_summary,
        module_loads=w.module_loads,
        cpu=w.cpu,
        state_lanes=w.state_lanes,
        blockers=w.blockers,
        stacks=w.stacks,
        view_builder=w.views,
        redacted=w.options.redact,
    )



def folded_stacks(
    trace_dir: str | os.PathLike[str],
    options: Options | None = None,
    *,
    pid: int | None = None,
    component: str | None = None,
    perf: bool = False,
) -> list[tuple[str, int]] | list[str]:
    """`k3sprof stacks`: the trace's on-CPU samples as folded stacks (`proc;outer;...;inner`,
    count), most frequent first; perf: as `perf script` text lines, one block per sample.
    With options (a --start/--end), only the samples inside the analysis window [start, end]
    (the trace end when the end was not reached); else all. TraceError when the trace has no
    stack tables; UsageError for a bad option or an unknown component."""
    from tracer import schema
    from tracer._errors import TraceError, UsageError

    if options is not None:
        options.check()
    trace = schema.load(Path(trace_dir))
    w = Work(full=trace, options=options or Options(), redact=Redactor(True))
    needed = ("procs", "bounds", "scope", "profile", "stackix")  # what the stack index reads
    for name, fn in PASSES:
        if name in needed:
            setattr(w, name, fn(w))
    ix = w.stackix
    if ix is None:
        raise TraceError(
            f"{trace_dir}: no stack tables (recorded with --no-stacks, or by a k3sprof older "
            "than schema 1.3)"
        )
    if component is not None and component not in ix.components:
        known = ", ".join(sorted(c for c in ix.components if not c.startswith("("))) or "none"
        raise UsageError(f"no stacks of component {component!r} in this trace (it has: {known})")
    lo = hi = None
    if options is not None and (options.start is not None or options.end is not None):
        a = run(trace, options)
        lo, hi = a.start_ns, a.end_ns if a.end_ns is not None else None
    comm = {p.pid: p.comm for p in w.procs.procs if p.comm}
    pids = None if pid is None else {pid}
    if perf:  # `perf script` text: Perfetto's callstack-profile import (docs/stacks.md)
        return ix.perf_script(lo, hi, pids=pids, component=component, comm=comm)
    return ix.folded(lo, hi, pids=pids, component=component, comm=comm)
