"""The analyzer's work state: what the user chose (:class:`Options`), how text leaves it
(:class:`Redactor`), and :class:`Work`, the tables plus each pass's result under the pass's name.
The passes are in passes.py, their order in tracer/analyzer/__init__.py (PASSES).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from tracer._errors import UsageError
from tracer.analyzer import (
    critical_path,
    facts,
    phases,
    schedpath,
    waits,
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
    MomentJson,
    Party,
    PathSummaryJson,
    PhaseJson,
    ProcessJson,
    StacksJson,
    StateLanesJson,
    TraceFacts,
)
from tracer.analyzer.profiles import Profile
from tracer.analyzer.sched import SchedIndex
from tracer.analyzer.stacks import SegmentComponents, StackIndex
from tracer.analyzer.tree import Processes
from tracer.schema import Trace


@dataclass(frozen=True)
class Options:
    """What the user chose (analyze/report/export/compare options, docs/analyze.md).

    scope: "tree" (the recorded command's process tree), "all" (every process in the trace) or
    "auto" (tree when the trace has the recorded command's pid, else all)."""

    profile: str = "auto"
    start: str | None = None
    end: str | None = None
    redact: bool = True
    scope: str = "auto"

    def check(self) -> None:
        """Bad options are a UsageError before any work is done."""
        for spec in (self.start, self.end):
            if spec is not None:
                phases.validate(spec)
        if self.scope not in ("auto", *scoping.MODES):
            raise UsageError(f"unknown scope {self.scope!r}: use tree or all")


@dataclass
class Redactor:
    """argv and free text as they may leave the analyzer (tracer.redact unless redact=False)."""

    enabled: bool
    _argv_cache: dict[tuple[str, ...], list[str]] = field(default_factory=dict)

    def argv(self, argv: list[str]) -> list[str]:
        if not self.enabled:
            return list(argv)
        from tracer.redact import redact_argv

        # thousands of helpers share a few command lines: redact each distinct one once
        key = tuple(argv)
        if key not in self._argv_cache:
            self._argv_cache[key] = redact_argv(list(argv))
        return list(self._argv_cache[key])

    def text(self, s: str) -> str:
        if not self.enabled:
            return s
        from tracer.redact import redact_text

        return redact_text(s)


@dataclass
class Bounds:
    """The recording's own span (ns)."""

    start_ns: int
    end_ns: int


@dataclass
class Scope:
    mode: str
    #: instance index of the recorded command's process, when the metadata names it
    root: int | None
    #: instance indices in scope (None: everything)
    members: set[int] | None
    #: the tables restricted to the scope, and the view waits are found in (plus every listen)
    trace: Trace
    wait_view: Trace
    #: scoped row number -> the trace's own row number, per table
    row_maps: dict[str, Any]


@dataclass
class Window:
    """The start and end milestones: where the critical path starts and ends."""

    start_ns: int
    start_reached: bool
    start_by: str
    end_ns: int | None
    end_proc: int | None
    end_by: str

    @property
    def end_reached(self) -> bool:
        return self.start_reached and self.end_ns is not None and self.end_ns >= self.start_ns

    def span(self, trace_end: int) -> tuple[int, int]:
        """[start, end] of the analysis: the trace end when the end was not reached."""
        end = self.end_ns if self.end_reached and self.end_ns is not None else trace_end
        return self.start_ns, max(end, self.start_ns)

    @property
    def total_ns(self) -> int | None:
        return self.end_ns - self.start_ns if self.end_reached and self.end_ns is not None else None


@dataclass
class SchedPath:
    """The scheduler states on the critical path (empty without sched data)."""

    index: SchedIndex | None
    #: one per critical-path segment (None: no states for it)
    segments: list[schedpath.SegmentStates | None]


@dataclass
class Work:
    """The inputs, then each pass's result under its name (set in pass order)."""

    full: Trace
    options: Options
    redact: Redactor
    procs: Processes = field(init=False)
    bounds: Bounds = field(init=False)
    scope: Scope = field(init=False)
    profile: Profile = field(init=False)
    #: the sched/wakeup tables indexed (None: recorded without --sched)
    schedix: SchedIndex | None = field(init=False)
    #: the stack tables indexed and named (None: recorded without stacks)
    stackix: StackIndex | None = field(init=False)
    waits: list[waits.Wait] = field(init=False)
    events: phases.Events = field(init=False)
    cgroups: facts.Cgroups = field(init=False)
    window: Window = field(init=False)
    path: list[critical_path.Segment] = field(init=False)
    sched: SchedPath = field(init=False)
    #: with stacks: per critical-path segment, its on-CPU ns by component (None: none)
    stackpath: list[SegmentComponents | None] | None = field(init=False)
    #: with stacks: per wait, (waiter component, target component)
    wait_parts: list[tuple[str | None, str | None]] | None = field(init=False)
    milestones: list[MilestoneJson] = field(init=False)
    phases: list[PhaseJson] = field(init=False)
    shown: set[int] | None = field(init=False)
    processes: list[ProcessJson] = field(init=False)
    # the optional sections of the Analysis (None: left out)
    path_summary: PathSummaryJson | None = field(init=False)
    module_loads: list[ModuleLoaderJson] | None = field(init=False)
    cpu: CpuJson | None = field(init=False)
    state_lanes: StateLanesJson | None = field(init=False)
    blockers: BlockersJson | None = field(init=False)
    stacks: StacksJson | None = field(init=False)
    groups: list[GroupJson] = field(init=False)
    counts: CountsJson = field(init=False)
    facts: TraceFacts = field(init=False)
    views: Callable[[], EventViews] = field(init=False)

    # -- helpers the passes share ---------------------------------------------------------
    def comm(self, idx: int | None) -> str | None:
        return None if idx is None or idx < 0 else self.procs.procs[idx].comm

    def pid(self, idx: int | None) -> int | None:
        return None if idx is None or idx < 0 else self.procs.procs[idx].pid

    def key(self, idx: int | None) -> str | None:
        return None if idx is None or idx < 0 else self.procs.procs[idx].key

    def party(self, idx: int | None) -> Party | None:
        if idx is None or idx < 0:
            return None
        p = self.procs.procs[idx]
        return {"pid": p.pid, "comm": p.comm, "key": p.key}

    def describe(self, occ: tuple[str, int, int | None]) -> MomentJson:
        """A moment a spec matched, for milestones and phases."""
        spec, ts, pr = occ
        return {
            "spec": self.redact.text(spec),
            "ts_ns": ts,
            "pid": self.pid(pr),
            "comm": self.comm(pr),
            "key": self.key(pr),
        }


#: the fields of Work set before any pass runs
INPUTS = frozenset({"full", "options", "redact"})

T = TypeVar("T")


@dataclass(frozen=True)
class Pass(Generic[T]):
    """A pass: a function of Work that READS the named fields of Work (the inputs, or the
    results of earlier passes); what it WRITES is the field named like it in PASSES."""

    fn: Callable[[Work], T]
    reads: frozenset[str]

    def __call__(self, w: Work) -> T:
        return self.fn(w)


def reads(*names: str) -> Callable[[Callable[[Work], T]], Pass[T]]:
    """Declare the Work fields a pass reads (tests/unit/test_passes_order.py checks the order of
    PASSES against these, and that a real analysis reads nothing else)."""
    unknown = set(names) - {f.name for f in fields(Work)}
    if unknown:
        raise AssertionError(f"not fields of Work: {sorted(unknown)}")

    def declare(fn: Callable[[Work], T]) -> Pass[T]:
        return Pass(fn, frozenset(names))

    return declare
