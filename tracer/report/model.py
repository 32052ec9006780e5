"""What every shareable output (HTML report, compare, Perfetto export) reads from an analysis.

Pure functions over one :class:`tracer.analyzer.Analysis`: rows for tables and figures, facts,
warnings, formatting. Nothing here opens a trace table, scopes or redacts: the analyzer did
that once (the Analysis' event views are already scoped and redacted). The fields are typed:
an Analysis read back from `analyze --json` (compare) was made whole by Analysis.from_json.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

from tracer.analyzer.model import (
    Analysis,
    BusyCoresJson,
    MilestoneJson,
    MomentJson,
    Party,
    PathShareJson,
)

#: Critical-path segment kinds, in the order a legend shows them.
SEGMENT_KINDS = (
    "run",
    "wait:listener",
    "wait:poll",
    "wait:poll-lag",
    "wait:child",
    "wait:module",
    "wait:wakeup",
    "wait:unknown",
)


class ProcessRow(TypedDict):
    key: str
    pid: int
    parent_key: str | None
    comm: str
    exe: str
    argv: list[str]
    start_ns: int | None
    end_ns: int | None
    exit_code: int | None
    exit_signal: int | None
    component: str
    unit: str | None
    #: "pod UID" / the systemd unit / "(no unit)" (the analyzer's groups); None when the trace
    #: attributes no process to a unit or pod (no cgroup table)
    group: str | None
    on_critical_path: bool


class SegmentRow(TypedDict):
    start_ns: int
    end_ns: int
    kind: str
    label: str
    pid: int | None
    comm: str
    #: scheduler states (ns) and whose they are ("comm[pid]"), when the trace has them
    states: NotRequired[dict[str, int]]
    states_of: NotRequired[str]


class WaitRow(TypedDict):
    kind: str
    endpoint: str | None
    waiter_pid: int | None
    waiter_comm: str
    target_pid: int | None
    target_comm: str
    first_attempt_ns: int | None
    ready_ns: int | None
    first_ok_ns: int | None
    last_ns: int | None
    attempts: int | None
    interval_ns: int | None
    lag_ns: int | None
    start_ns: int | None
    end_ns: int | None
    reason: str
    #: overlaps the analysis window (older analyze --json files: always true)
    in_window: bool


class PhaseRow(TypedDict):
    name: str
    start_ns: int | None
    end_ns: int | None
    duration_ns: int | None
    defined_by: str


class MilestoneRow(TypedDict):
    name: str
    ts_ns: int
    detail: str


class Facts(TypedDict):
    name: str
    hostname: str
    kernel: str
    k3s_version: str
    command: str
    start_ns: int
    end_ns: int
    duration_ns: int
    lost_events: int
    probes_unavailable: list[str]
    truncated: list[str]
    missing: list[str]
    complete: bool | None
    profile: str
    scope: str
    end_reached: bool
    analysis_start_ns: int
    analysis_end_ns: int
    total_ns: int


def _who(v: Party | None) -> tuple[int | None, str]:
    """A waiter/target as (pid, comm)."""
    return (None, "") if v is None else (v["pid"], v["comm"] or "")


def segments(a: Analysis) -> list[SegmentRow]:
    out: list[SegmentRow] = []
    for s in a.critical_path:
        row = SegmentRow(
            start_ns=s["start_ns"],
            end_ns=s["end_ns"],
            kind=s["kind"],
            label=s["label"],
            pid=s["pid"],
            comm=s["comm"] or "",
        )
        st, of = s.get("states"), s.get("states_of")
        if st is not None:
            row["states"] = st
            pid, comm = _who(of)
            row["states_of"] = f"{comm}[{pid}]"
        out.append(row)
    return out


def waits(a: Analysis) -> list[WaitRow]:
    out: list[WaitRow] = []
    for w in a.waits:
        wpid, wcomm = _who(w["waiter"])
        tpid, tcomm = _who(w["target"])
        out.append(
            WaitRow(
                kind=w["kind"],
                endpoint=w["endpoint"],
                waiter_pid=wpid,
                waiter_comm=wcomm,
                target_pid=tpid,
                target_comm=tcomm,
                first_attempt_ns=w["first_attempt_ns"],
                ready_ns=w["ready_ns"],
                first_ok_ns=w["first_ok_ns"],
                last_ns=w["ended_ns"] if w["ended_ns"] is not None else w["last_attempt_ns"],
                attempts=w["attempts"],
                interval_ns=w["interval_ns"],
                lag_ns=w["lag_ns"],
                start_ns=w["start_ns"],
                end_ns=w["end_ns"],
                reason=w["reason"],
                in_window=w["in_window"],
            )
        )
    return out


def wait_span(w: WaitRow) -> tuple[int, int] | None:
    """The interval a wait blocked its waiter: the analyzer's own span where it gives one, else
    first attempt to first ok (or to its last attempt)."""
    start = w["start_ns"] if w["start_ns"] is not None else w["first_attempt_ns"]
    end = w["end_ns"]
    if end is None:
        end = w["first_ok_ns"] if w["first_ok_ns"] is not None else w["last_ns"]
    if start is None or end is None or end < start:
        return None
    return start, end


def _moment_text(m: MomentJson | MilestoneJson) -> str:
    """A matched moment for humans: "listen:6444 (k3s-server [100])"."""
    who = f" ({m['comm'] or '?'} [{m['pid']}])" if m["comm"] or m["pid"] is not None else ""
    return m["spec"] + who


def phases(a: Analysis) -> list[PhaseRow]:
    out: list[PhaseRow] = []
    for p in a.phases:
        se, ee = p["start_event"], p["end_event"]
        if se is not None and ee is not None:
            defined = f"{_moment_text(se)} → {_moment_text(ee)}"
        else:  # the definition: start specs → end specs
            specs = p["defined_by"]
            defined = " → ".join(" | ".join(specs[k]) or "?" for k in ("start", "end"))
        if p["missing"]:
            # an absent phase says why, and how it would have been measured
            defined = f"absent: {p['missing']} (defined as {defined})"
        out.append(
            PhaseRow(
                name=p["name"],
                start_ns=p["start_ns"],
                end_ns=p["end_ns"],
                duration_ns=p["duration_ns"],
                defined_by=defined,
            )
        )
    return out


def milestones(a: Analysis) -> list[MilestoneRow]:
    """In time order (as the analyzer lists them)."""
    out: list[MilestoneRow] = []
    for m in a.milestones:
        if m["spec"]:
            detail = _moment_text(m)
        else:
            bits = [f"comm={m['comm']}"] if m["comm"] else []
            bits += [f"pid={m['pid']}"] if m["pid"] is not None else []
            detail = ", ".join(bits)
        out.append(MilestoneRow(name=m["name"], ts_ns=m["ts_ns"], detail=detail))
    return out


def processes(a: Analysis) -> list[ProcessRow]:
    on_path = {s["pid"] for s in a.critical_path if s["pid"] is not None}
    has_units = any(p["unit"] or p["pod_uid"] for p in a.processes)
    out: list[ProcessRow] = []
    for p in a.processes:
        group = None
        if has_units:
            group = f"pod {p['pod_uid']}" if p["pod_uid"] else (p["unit"] or "(no unit)")
        out.append(
            ProcessRow(
                key=p["key"],
                pid=p["pid"],
                parent_key=p["parent_key"] or None,
                comm=p["comm"] or "",
                exe=p["exe"] or "",
                argv=list(p["argv"]),
                start_ns=p["start_ns"],
                end_ns=p["end_ns"],
                exit_code=p["exit_code"],
                exit_signal=p["exit_signal"],
                component=p["component"] or p["unit"] or "other",
                unit=p["unit"] or None,
                group=group,
                on_critical_path=p["pid"] in on_path,
            )
        )
    return out


def _lines(d: Mapping[str, str] | None) -> list[str]:
    return [f"{k}: {v}" for k, v in sorted((d or {}).items())]


def facts(a: Analysis) -> Facts:
    """The facts a report shows first, from the analysis' own trace facts."""
    tf = a.trace
    start, end = tf["start_ns"], tf["end_ns"]
    return Facts(
        name=os.path.basename(os.path.normpath(tf["path"])) or "trace",
        hostname=tf["hostname"] or "",
        kernel=tf["kernel"] or "",
        k3s_version=(tf["k3s_version"] or "")
        + (f" ({tf['k3s_commit']})" if tf["k3s_commit"] else ""),
        command=tf["command"] or "",
        start_ns=start,
        end_ns=end,
        duration_ns=max(0, end - start),
        lost_events=max(tf["lost_events"], a.lost_events),
        probes_unavailable=_lines(tf["probes_unavailable"]),
        truncated=_lines(tf["truncated_tables"]),
        missing=_lines(tf["missing_tables"]),
        complete=tf["complete"],
        profile=a.profile,
        scope=_scope_text(a),
        end_reached=a.end_reached,
        analysis_start_ns=a.start_ns or start,
        analysis_end_ns=a.end_ns or end,
        total_ns=a.total_ns or 0,
    )


def analysis_window(f: Facts) -> tuple[int, int]:
    """The analysis window (start..end milestone; the recording's end when it was not reached)."""
    lo = f["analysis_start_ns"]
    hi = f["analysis_end_ns"] if f["end_reached"] else max(f["end_ns"], lo)
    return lo, max(hi, lo)


def _scope_text(a: Analysis) -> str:
    sc = a.scope
    if sc["mode"] != "tree":
        return "all processes in the trace"
    pid, comm = _who(sc["root"])
    return (
        f"tree of {comm or '?'} [{pid}]: {sc['processes']} processes "
        f"({sc['left_out']} others left out)"
    )


def warnings(f: Facts) -> list[str]:
    """What a reader must know before trusting the picture: said loudly, at the top."""
    out = []
    if f["lost_events"]:
        out.append(
            f"{f['lost_events']} events were lost (ring buffer full): waits and the critical path "
            "may be incomplete. Record again with a bigger buffer."
        )
    for p in f["probes_unavailable"]:
        out.append(f"Probe unavailable, its events are missing: {p}")
    for t in f["truncated"]:
        out.append(f"Trace table cut short (recorder stopped mid-write): {t}")
    for t in f["missing"]:
        out.append(f"Trace table missing, its events are not in this analysis: {t}")
    if f["complete"] is False:
        out.append("The recorder did not stop cleanly: the trace ends at its last flush.")
    if not f["end_reached"]:
        out.append(
            "The end milestone was never reached: there is no critical path to it "
            "(pick one with --end COND)."
        )
    return out


#: one executable's or component's share of the critical path
SummaryRow = PathShareJson


def path_summary(a: Analysis, by: str) -> list[SummaryRow]:
    """The critical path by "executable" or "component" (the analyzer's path_summary)."""
    ps = a.path_summary
    if ps is None:
        return []
    return list(ps["by_executable"] if by == "executable" else ps["by_component"])


def composition(segs: Sequence[SegmentRow]) -> dict[str, int]:
    """Critical-path time per segment kind (ns)."""
    out: dict[str, int] = {}
    for s in segs:
        out[s["kind"]] = out.get(s["kind"], 0) + (s["end_ns"] - s["start_ns"])
    return out


#: the machine's busy cores per bucket (the analysis' `cpu` section, record --sched)
BusyCores = BusyCoresJson


def busy_cores(a: Analysis) -> BusyCores | None:
    """The `cpu` section's busy-cores timeline, or None without scheduler data."""
    return a.cpu["busy_cores"] if a.cpu is not None else None
