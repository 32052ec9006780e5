"""What `analyze()` returns: one typed :class:`Analysis`, the only thing reporters read.

Its JSON form (:meth:`Analysis.to_json`) is `analyze --json`, documented in docs/analyze.md.
Besides the JSON parts it carries :class:`EventViews`: the per-event detail a report draws
(every connect, listen, exec, module load), already scoped to what the analysis shows and
already redacted, so no reporter opens a trace table, re-scopes or re-redacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

ANALYSIS_VERSION = "1"


class Party(TypedDict):
    """A process instance named in a wait or a scope: pid-reuse safe by its key."""

    pid: int
    comm: str | None
    key: str


class WaitJson(TypedDict):
    kind: str
    endpoint: str | None
    component: str | None
    waiter: Party | None
    target: Party | None
    start_ns: int
    end_ns: int | None
    duration_ns: int | None
    first_attempt_ns: int | None
    ready_ns: int | None
    first_ok_ns: int | None
    last_attempt_ns: int | None
    ended_ns: int | None
    attempts: int | None
    interval_ns: int | None
    lag_ns: int | None
    outcomes: dict[str, int] | None
    #: 0..1 for polls (how regular the cadence is); None for other kinds
    confidence: float | None
    reason: str
    evidence: dict[str, list[int]]
    #: overlaps the analysis window [start_ns, end_ns] (the trace end when the end was not
    #: reached): only these are ranked (Top waits, the report's table); the rest are listed
    in_window: bool
    #: with stacks (schema 1.3): the component whose stacks made the connects (child/module
    #: waits: the stack at the helper's fork), and the one at the target's listen / accepts
    waiter_component: NotRequired[str | None]
    target_component: NotRequired[str | None]
    #: only when another process than the target called listen() (issue 29)
    listener: NotRequired[Party | None]


class SegmentJson(TypedDict):
    start_ns: int
    end_ns: int
    duration_ns: int
    kind: str
    label: str
    pid: int | None
    comm: str | None
    key: str | None
    wait: int | None
    pct: float | None
    #: ns per scheduler state {cpu, runqueue, io, sleep, other}, summing exactly to
    #: duration_ns: the segment's process (run) or the wait's target (poll/listener waits);
    #: absent without sched data (record --sched) or for other kinds
    states: NotRequired[dict[str, int]]
    #: whose states those are
    states_of: NotRequired[Party | None]
    #: wait:poll: wakers of the target's longest idle stretches in the segment
    woken_by: NotRequired[list[WokenByJson]]
    #: wait:wakeup: the wakeup that ended the woken process's idle stretch {ts_ns,
    #: idle_start_ns, idle_ns, woken (Party), woken_tid, waker_pid, waker_tid, waker_comm,
    #: waker (Party or None)}; the segment's own pid/comm are the waker's (sched data only)
    wakeup: NotRequired[WakeupJson]
    #: with stacks: on-CPU ns of `components_of` in the segment by component; summing exactly
    #: to states["cpu"] when components_from is "sched", else samples x the sampling period
    components: NotRequired[dict[str, int]]
    components_of: NotRequired[Party | None]
    components_from: NotRequired[str]
    #: per component: its most frequent innermost frame in the segment
    components_hot: NotRequired[dict[str, str]]


class MilestoneJson(TypedDict):
    name: str
    spec: str
    ts_ns: int
    pid: int | None
    comm: str | None
    #: the process instance (absent for the start milestone, which no process defines)
    key: NotRequired[str | None]


class ExecJson(TypedDict):
    ts_ns: int
    filename: str | None
    comm: str | None
    argv: list[str]


class ProcessJson(TypedDict):
    key: str
    pid: int
    parent_key: str | None
    comm: str | None
    exe: str | None
    argv: list[str]
    start_ns: int | None
    first_seen_ns: int | None
    end_ns: int | None
    exit_code: int | None
    exit_signal: int | None
    component: str | None
    unit: str | None
    pod_uid: str | None
    group: str
    cgroup: str | None
    threads: int
    from_snapshot: bool
    in_scope: bool
    execs: list[ExecJson]
    #: with stacks: the component of the stack at the fork that created it
    spawned_by_component: NotRequired[str | None]


class GroupJson(TypedDict):
    kind: str
    name: str
    unit: str | None
    pod_uid: str | None
    processes: int
    execs: int
    connects: int
    first_ns: int | None
    last_ns: int | None


class ScopeJson(TypedDict):
    mode: str
    root: Party | None
    processes: int
    left_out: int


class TraceFacts(TypedDict):
    path: str
    hostname: str | None
    kernel: str | None
    k3s_version: str | None
    k3s_commit: str | None
    k3s_version_from: str | None
    schema_version: str | None
    tracer_version: str | None
    start_ns: int
    end_ns: int
    duration_ns: int
    complete: bool | None
    lost_events: int
    probes_unavailable: dict[str, str] | None
    truncated_tables: dict[str, str]
    #: tables the metadata says were recorded but whose file is missing (read as empty)
    missing_tables: dict[str, str]
    command: str | None


class MomentJson(TypedDict):
    """A moment a spec matched (a phase's start or end event)."""

    spec: str
    ts_ns: int
    pid: int | None
    comm: str | None
    key: str | None


class PhaseSpecsJson(TypedDict):
    """The specs that define a phase (docs/analyze.md, COND syntax)."""

    start: list[str]
    end: list[str]


class PhaseJson(TypedDict):
    """A phase as phases.phase_list builds it: its duration, or why it is absent."""

    name: str
    start_ns: int | None
    end_ns: int | None
    duration_ns: int | None
    start_event: MomentJson | None
    end_event: MomentJson | None
    #: why the phase has no duration (None: it has one)
    missing: str | None
    defined_by: PhaseSpecsJson


class CountsJson(TypedDict):
    """Per-kind event counts of the processes in scope (docs/analyze.md `counts`)."""

    events: int
    processes: int
    forks: int
    threads: int
    execs: int
    exec_failed: int
    exits: int
    connects: int
    connects_ok: int
    connects_failed: int
    listens: int
    module_events: int
    log_lines: int
    #: wait kind -> how many waits of it
    waits: dict[str, int]


class WokenByJson(TypedDict):
    """A wakeup that ended one of a poll target's threads' idle stretches (schedpath.py)."""

    ts_ns: int
    tid: int
    idle_start_ns: int | None
    idle_ns: int
    idle_state: str
    #: "process" | "timer" | "network" | "disk" | "unknown"
    kind: str
    pid: int | None
    comm: str | None
    same_process: bool


class WakeupJson(TypedDict):
    """The wakeup that ended a woken process's idle stretch (a wait:wakeup segment)."""

    ts_ns: int
    idle_start_ns: int
    idle_ns: int
    woken: Party | None
    woken_tid: int | None
    waker_pid: int | None
    waker_tid: int | None
    waker_comm: str | None
    waker: Party | None


# -- the optional sections (each None, so left out of the JSON, when it does not apply) --------


class PathShareJson(TypedDict):
    """One executable's or component's share of the critical path."""

    name: str
    segments: int
    processes: int
    total_ns: int
    pct: float


class PathSummaryJson(TypedDict):
    """Section `path_summary` (summary.py): the critical path by executable and component."""

    by_executable: list[PathShareJson]
    by_component: list[PathShareJson]


class ModuleLoadJson(TypedDict):
    module: str | None
    syscall: str
    start_ns: int | None
    end_ns: int
    duration_ns: int | None
    ret: int | None


class ModuleLoaderJson(TypedDict):
    """Section `module_loads` (modules.py), one per loading process."""

    pid: int
    key: str
    command: str
    loads: list[ModuleLoadJson]
    total_ns: int


class CpuProcessJson(TypedDict):
    pid: int
    comm: str | None
    key: str | None
    cpu_ns: int
    pct_of_window: float | None


class BusyCoresJson(TypedDict):
    """Busy cores per bucket: parallel lists."""

    bucket_ns: int
    start_ns: list[int]
    cores: list[float]


class CpuJson(TypedDict):
    """Section `cpu` (schedpath.py; record --sched): per-process on-CPU time, busy cores."""

    start_ns: int
    end_ns: int
    processes: list[CpuProcessJson]
    others_ns: int
    busy_cores: BusyCoresJson


class ThreadLaneJson(TypedDict):
    """One thread's runs of its dominant state: parallel lists start_ns, end_ns, state."""

    tid: int
    cpu_ns: int
    start_ns: list[int]
    end_ns: list[int]
    state: list[str]


class StateLaneJson(TypedDict):
    """One process's runs of its dominant state: parallel lists start_ns, end_ns, state."""

    pid: int
    comm: str | None
    key: str
    on_path_ns: int
    start_ns: list[int]
    end_ns: list[int]
    state: list[str]
    threads: list[ThreadLaneJson]
    threads_left_out: int


class StateLanesJson(TypedDict):
    """Section `state_lanes` (schedpath.py; record --sched)."""

    start_ns: int
    end_ns: int
    bucket_ns: int
    lanes: list[StateLaneJson]
    left_out: int


class FsyncJson(TypedDict):
    pid: int
    comm: str | None
    calls: int
    total_ns: int
    max_ns: int
    #: syscall -> calls
    by_kind: dict[str, int]
    #: with stacks: fsync ns by the component of the stack at the call, and the largest
    components: NotRequired[dict[str, int]]
    component: NotRequired[str | None]


class WakeupEdgeJson(TypedDict):
    waker_pid: int
    waker_comm: str | None
    woken_pid: int
    woken_comm: str | None
    count: int
    idle_ns: int
    max_idle_ns: int
    #: critical-path time spent in this waker's wait:wakeup segments
    path_ns: int


class BlockersJson(TypedDict):
    """Section `blockers` (blockers.py; record --sched)."""

    start_ns: int
    end_ns: int
    fsync: list[FsyncJson]
    fsync_left_out: int
    wakeups: list[WakeupEdgeJson]
    wakeups_left_out: int


#: [folded stack ("proc;outer;...;inner"), samples]: a JSON pair
FoldedJson = list[Any]


class ComponentSamplesJson(TypedDict):
    component: str
    samples: int
    pct: float


class SegmentFlameJson(TypedDict):
    """The folded stacks of one critical-path segment's process inside the segment."""

    segment: int
    pid: int
    folded: list[FoldedJson]
    folded_left_out: int


class ComponentLaneJson(TypedDict):
    """One process's runs of its dominant component: parallel lists."""

    pid: int
    comm: str | None
    key: str | None
    start_ns: list[int]
    end_ns: list[int]
    component: list[str]
    samples: list[int]


class ComponentLanesJson(TypedDict):
    bucket_ns: int
    lanes: list[ComponentLaneJson]
    left_out: int


class StacksJson(TypedDict):
    """Section `stacks` (stacks.py; schema 1.3)."""

    start_ns: int
    end_ns: int
    sample_hz: int
    cpu_samples: int
    #: event kind -> stacks taken at it
    event_stacks: dict[str, int]
    by_component: list[ComponentSamplesJson]
    folded: list[FoldedJson]
    folded_left_out: int
    segments: list[SegmentFlameJson]
    lanes: ComponentLanesJson | None
    problems: list[str]


#: Columnar rows: column name -> values, in time order.
Columns = dict[str, list[Any]]


@dataclass
class EventViews:
    """Per-event detail for the report, in the analysis' scope and redacted as it was.

    Not part of the JSON: an Analysis read back from `analyze --json` has empty views."""

    connects: Columns = field(default_factory=dict)
    listens: Columns = field(default_factory=dict)
    execs: Columns = field(default_factory=dict)
    module_loads: Columns = field(default_factory=dict)
    #: pids with a process/socket/module event inside the analysis window (whole trace)
    active_pids: set[int] = field(default_factory=set)


#: The JSON keys, in the order of the dataclass fields below (sections and views excepted).
_JSON_FIELDS = (
    "analysis_version",
    "profile",
    "start_ns",
    "end_ns",
    "total_ns",
    "start_reached",
    "end_reached",
    "start_by",
    "end_by",
    "critical_path",
    "waits",
    "milestones",
    "phases",
    "counts",
    "lost_events",
    "processes",
    "groups",
    "scope",
    "trace",
)

#: The optional sections' JSON keys, in the order their passes run (each left out when None).
SECTION_FIELDS = ("path_summary", "module_loads", "cpu", "state_lanes", "blockers", "stacks")


@dataclass
class Analysis:
    """The analysis of one trace (docs/analyze.md, "JSON")."""

    analysis_version: str
    profile: str
    start_ns: int
    end_ns: int | None
    total_ns: int | None
    start_reached: bool
    end_reached: bool
    start_by: str
    end_by: str
    critical_path: list[SegmentJson]
    waits: list[WaitJson]
    milestones: list[MilestoneJson]
    phases: list[PhaseJson]
    counts: CountsJson
    lost_events: int
    processes: list[ProcessJson]
    groups: list[GroupJson]
    scope: ScopeJson
    trace: TraceFacts
    # the optional sections (JSON key = the field name = the pass name; None: left out)
    path_summary: PathSummaryJson | None = None
    module_loads: list[ModuleLoaderJson] | None = None
    cpu: CpuJson | None = None
    state_lanes: StateLanesJson | None = None
    blockers: BlockersJson | None = None
    stacks: StacksJson | None = None
    #: builds the event views on first use (`analyze` never needs them: no cost there)
    view_builder: Callable[[], EventViews] | None = field(
        default=None, repr=False, compare=False
    )
    #: whether argv and free text went through tracer.redact
    redacted: bool = True
    _views: EventViews | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def views(self) -> EventViews:
        """Per-event detail for reporters (empty for an Analysis read back from JSON)."""
        if self._views is None:
            self._views = self.view_builder() if self.view_builder is not None else EventViews()
        return self._views

    @property
    def sections(self) -> dict[str, Any]:
        """The optional sections present, by JSON key (read-only: a copy)."""
        return {k: v for k in SECTION_FIELDS if (v := getattr(self, k)) is not None}

    def to_json(self) -> dict[str, Any]:
        """`analyze --json`: the core keys plus every optional section that is present."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _JSON_FIELDS}
        out.update(self.sections)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], *, redacted: bool = True) -> Analysis:
        """An Analysis read back from `analyze --json` output (no event views). Keys an older
        analyzer did not write read as empty; `critical_path` must be there."""
        if "critical_path" not in data:
            raise KeyError("critical_path")
        defaults: dict[str, Any] = {
            "analysis_version": ANALYSIS_VERSION, "profile": "", "start_ns": 0,
            "start_reached": True, "end_reached": False, "start_by": "", "end_by": "",
            "lost_events": 0,
        }
        for k in ("critical_path", "waits", "milestones", "phases", "processes", "groups"):
            defaults[k] = []
        for k in ("counts", "scope", "trace"):
            defaults[k] = {}
        parts: dict[str, Any] = {k: data.get(k, defaults.get(k)) for k in _JSON_FIELDS}
        parts.update((k, data.get(k)) for k in SECTION_FIELDS)
        # keys an older analyzer did not write, so every reader can index the typed fields
        parts["trace"] = {**_OLD_TRACE_FACTS, **parts["trace"]}
        parts["scope"] = {**_OLD_SCOPE, **parts["scope"]}
        parts["waits"] = [{"in_window": True, **w} for w in parts["waits"]]
        return cls(**parts, redacted=redacted)


#: what Analysis.from_json assumes for keys older `analyze --json` files lack
_OLD_TRACE_FACTS: dict[str, Any] = {
    **dict.fromkeys(TraceFacts.__required_keys__),
    "path": "", "start_ns": 0, "end_ns": 0, "duration_ns": 0, "lost_events": 0,
    "truncated_tables": {}, "missing_tables": {},
}
_OLD_SCOPE: dict[str, Any] = {"mode": "all", "root": None, "processes": 0, "left_out": 0}
