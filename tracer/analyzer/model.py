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
    woken_by: NotRequired[list[dict[str, Any]]]
    #: wait:wakeup: the wakeup that ended the woken process's idle stretch {ts_ns,
    #: idle_start_ns, idle_ns, woken (Party), woken_tid, waker_pid, waker_tid, waker_comm,
    #: waker (Party or None)}; the segment's own pid/comm are the waker's (sched data only)
    wakeup: NotRequired[dict[str, Any]]
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


#: A phase as phases.phase_list builds it (name, start/end events, duration or why absent).
PhaseJson = dict[str, Any]
#: Per-kind event counts (docs/analyze.md `counts`).
CountsJson = dict[str, Any]
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
    #: optional parts added by passes beyond the core ones (JSON key = the pass name)
    sections: dict[str, Any] = field(default_factory=dict)
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

    def to_json(self) -> dict[str, Any]:
        """`analyze --json`: the core keys plus every optional section that is present."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _JSON_FIELDS}
        out.update((k, v) for k, v in self.sections.items() if v is not None)
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
        sections = {k: v for k, v in data.items() if k not in _JSON_FIELDS}
        return cls(**parts, sections=sections, redacted=redacted)
