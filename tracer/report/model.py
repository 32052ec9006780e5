"""What every shareable output (HTML report, compare, Perfetto export) reads from an analysis.

Pure functions over one :class:`tracer.analyzer.Analysis`: rows for tables and figures, facts,
warnings, formatting. Nothing here opens a trace table, scopes or redacts: the analyzer did
that once (the Analysis' event views are already scoped and redacted). An Analysis read back
from `analyze --json` (compare) is read leniently with ``.get``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from tracer.analyzer.model import Analysis

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


def _int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _first_int(m: Mapping[str, Any], *keys: str) -> int | None:
    """The first of keys that holds a number (a key present with null does not count)."""
    for k in keys:
        v = _int(m.get(k))
        if v is not None:
            return v
    return None


def _who(v: Any) -> tuple[int | None, str]:
    """A waiter/target as (pid, comm); the analyzer writes {pid, comm} or null."""
    if isinstance(v, Mapping):
        return _int(v.get("pid")), _str(v.get("comm"))
    return None, ""


def segments(a: Analysis) -> list[SegmentRow]:
    out: list[SegmentRow] = []
    for s in a.critical_path:
        start, end = _int(s.get("start_ns")), _int(s.get("end_ns"))
        if start is None or end is None:
            continue
        out.append(
            SegmentRow(
                start_ns=start,
                end_ns=end,
                kind=_str(s.get("kind")) or "run",
                label=_str(s.get("label")),
                pid=_int(s.get("pid")),
                comm=_str(s.get("comm")),
            )
        )
        st = s.get("states")
        if isinstance(st, dict):
            out[-1]["states"] = {str(k): int(v) for k, v in st.items()}
            of: dict[str, Any] = dict(s.get("states_of") or {})
            out[-1]["states_of"] = f"{_str(of.get('comm'))}[{_int(of.get('pid'))}]"
    return out


def waits(a: Analysis) -> list[WaitRow]:
    out: list[WaitRow] = []
    for w in a.waits:
        wpid, wcomm = _who(w.get("waiter"))
        tpid, tcomm = _who(w.get("target"))
        out.append(
            WaitRow(
                kind=_str(w.get("kind")),
                endpoint=_str(w.get("endpoint"))
                if w.get("endpoint") is not None
                else None,
                waiter_pid=wpid,
                waiter_comm=wcomm,
                target_pid=tpid,
                target_comm=tcomm,
                first_attempt_ns=_int(w.get("first_attempt_ns")),
                ready_ns=_int(w.get("ready_ns")),
                first_ok_ns=_int(w.get("first_ok_ns")),
                last_ns=_first_int(w, "ended_ns", "last_attempt_ns"),
                attempts=_int(w.get("attempts")),
                interval_ns=_int(w.get("interval_ns")),
                lag_ns=_int(w.get("lag_ns")),
                start_ns=_int(w.get("start_ns")),
                end_ns=_int(w.get("end_ns")),
                reason=_str(w.get("reason")),
                in_window=w.get("in_window", True) is not False,
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


def _event_text(v: Any) -> str:
    """An event reference for humans: "listen:6444 (k3s-server [100])"."""
    if isinstance(v, Mapping):
        for key in ("spec", "label", "name", "description", "cond", "condition"):
            if v.get(key):
                who = ""
                if v.get("comm") or v.get("pid") is not None:
                    who = f" ({_who(v)[1] or '?'} [{v.get('pid')}])"
                return _str(v[key]) + who
        if "start" in v or "end" in v:  # {"start": [specs], "end": [specs]}: the definition
            return " → ".join(
                " | ".join(_str(x) for x in (v.get(k) or [])) or "?" for k in ("start", "end")
            )
        return ", ".join(f"{k}={v[k]}" for k in sorted(v) if not k.endswith("_ns"))
    if isinstance(v, list):
        return " | ".join(_str(x) for x in v)
    return _str(v)


def phases(a: Analysis) -> list[PhaseRow]:
    raw: Any = a.phases
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = sorted(raw.items())
    else:
        items = [(_str(p.get("name") or p.get("label")), p) for p in raw]
    out: list[PhaseRow] = []
    for name, p in items:
        if not isinstance(p, Mapping):
            continue
        start, end = _int(p.get("start_ns")), _int(p.get("end_ns"))
        dur = _int(p.get("duration_ns"))
        if dur is None and start is not None and end is not None:
            dur = end - start
        parts = [_event_text(p.get(k)) for k in ("start_event", "end_event") if p.get(k)]
        defined = " → ".join(parts) if len(parts) == 2 else ""
        if not defined:
            defined = _event_text(p.get("defined_by") or p.get("events") or "")
        if p.get("missing"):
            # an absent phase says why, and how it would have been measured
            defined = f"absent: {_str(p['missing'])}" + (
                f" (defined as {defined})" if defined else ""
            )
        out.append(
            PhaseRow(
                name=_str(name),
                start_ns=start,
                end_ns=end,
                duration_ns=dur,
                defined_by=_str(defined),
            )
        )
    return out


def milestones(a: Analysis) -> list[MilestoneRow]:
    raw: Any = a.milestones
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = sorted(raw.items())
    else:
        items = [(_str(m.get("name") or m.get("label") or m.get("kind")), m) for m in raw]
    out: list[MilestoneRow] = []
    for name, m in items:
        ts = _int(m) if not isinstance(m, Mapping) else _int(m.get("ts_ns"))
        if ts is None:
            continue
        detail = ""
        if isinstance(m, Mapping):
            if m.get("spec"):
                detail = _event_text(m)
            else:
                bits = [
                    f"{k}={m[k]}"
                    for k in sorted(m)
                    if k not in ("name", "label", "ts_ns", "key")
                    and m[k] not in (None, "", [])
                ]
                detail = ", ".join(bits)
        out.append(MilestoneRow(name=_str(name), ts_ns=ts, detail=_str(detail)))
    out.sort(key=lambda r: (r["ts_ns"], r["name"]))
    return out


def processes(a: Analysis) -> list[ProcessRow]:
    on_path = {s["pid"] for s in segments(a) if s["pid"] is not None}
    raw: list[Any] = list(a.processes)
    has_units = any(p.get("unit") or p.get("pod_uid") for p in raw)
    out: list[ProcessRow] = []
    for p in raw:
        pid = _int(p.get("pid"))
        if pid is None:
            continue
        argv = [str(a) for a in (p.get("argv") or [])]
        out.append(
            ProcessRow(
                key=_str(p.get("key")) or str(pid),
                pid=pid,
                parent_key=_str(p.get("parent_key")) or None,
                comm=_str(p.get("comm")),
                exe=_str(p.get("exe")),
                argv=argv,
                start_ns=_int(p.get("start_ns")),
                end_ns=_int(p.get("end_ns")),
                exit_code=_int(p.get("exit_code")),
                exit_signal=_int(p.get("exit_signal")),
                component=_str(p.get("component")) or _str(p.get("unit")) or "other",
                unit=_str(p.get("unit")) or None,
                group=(
                    ("pod " + _str(p["pod_uid"]) if p.get("pod_uid") else None)
                    or _str(p.get("unit"))
                    or "(no unit)"
                )
                if has_units
                else None,
                on_critical_path=pid in on_path,
            )
        )
    return out


def facts(a: Analysis) -> Facts:
    """The facts a report shows first, from the analysis' own trace facts."""
    tf: Mapping[str, Any] = a.trace
    start = _int(tf.get("start_ns")) or 0
    end = _int(tf.get("end_ns"))
    if end is None:
        end = _int(a.end_ns) or start
    unavailable = tf.get("probes_unavailable")
    truncated = tf.get("truncated_tables")
    complete = tf.get("complete")
    missing = tf.get("missing_tables")
    return Facts(
        name=os.path.basename(os.path.normpath(_str(tf.get("path")))) or "trace",
        hostname=_str(tf.get("hostname")),
        kernel=_str(tf.get("kernel")),
        k3s_version=_str(tf.get("k3s_version"))
        + (f" ({_str(tf.get('k3s_commit'))})" if tf.get("k3s_commit") else ""),
        command=_str(tf.get("command")),
        start_ns=start,
        end_ns=end,
        duration_ns=max(0, end - start),
        lost_events=max(_int(tf.get("lost_events")) or 0, _int(a.lost_events) or 0),
        probes_unavailable=[f"{k}: {unavailable[k]}" for k in sorted(unavailable)]
        if isinstance(unavailable, Mapping)
        else [],
        truncated=[f"{k}: {v}" for k, v in sorted(truncated.items())]
        if isinstance(truncated, Mapping)
        else [],
        missing=[f"{k}: {v}" for k, v in sorted(missing.items())]
        if isinstance(missing, Mapping)
        else [],
        complete=complete if isinstance(complete, bool) else None,
        profile=_str(a.profile),
        scope=_scope_text(a),
        end_reached=bool(a.end_reached),
        analysis_start_ns=_int(a.start_ns) or start,
        analysis_end_ns=_int(a.end_ns) or end,
        total_ns=_int(a.total_ns) or 0,
    )


def _scope_text(a: Analysis) -> str:
    sc: Any = a.scope
    if not isinstance(sc, Mapping) or sc.get("mode") != "tree":
        return "all processes in the trace"
    pid, comm = _who(sc.get("root"))
    return (
        f"tree of {comm or '?'} [{pid}]: {_int(sc.get('processes'))} processes "
        f"({_int(sc.get('left_out'))} others left out)"
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


class SummaryRow(TypedDict):
    name: str
    segments: int
    processes: int
    total_ns: int
    pct: float


def path_summary(a: Analysis, by: str) -> list[SummaryRow]:
    """The critical path by "executable" or "component" (the analyzer's path_summary)."""
    ps = a.sections.get("path_summary")
    rows = ps.get(f"by_{by}") if isinstance(ps, Mapping) else None
    return [
        SummaryRow(
            name=_str(r.get("name")),
            segments=_int(r.get("segments")) or 0,
            processes=_int(r.get("processes")) or 0,
            total_ns=_int(r.get("total_ns")) or 0,
            pct=float(r.get("pct") or 0.0),
        )
        for r in rows or []
        if isinstance(r, Mapping)
    ]


def composition(segs: Sequence[SegmentRow]) -> dict[str, int]:
    """Critical-path time per segment kind (ns)."""
    out: dict[str, int] = {}
    for s in segs:
        out[s["kind"]] = out.get(s["kind"], 0) + (s["end_ns"] - s["start_ns"])
    return out


def fmt_ns(ns: int | None) -> str:
    """A duration for humans: 1.234 s, 12.3 ms, 456 µs."""
    if ns is None:
        return "–"
    a = abs(ns)
    sign = "-" if ns < 0 else ""
    if a >= 1_000_000_000:
        return f"{sign}{a / 1e9:.3f} s"
    if a >= 1_000_000:
        return f"{sign}{a / 1e6:.1f} ms"
    if a >= 1_000:
        return f"{sign}{a / 1e3:.0f} µs"
    return f"{sign}{a} ns"


def fmt_t(ts_ns: int | None, t0: int) -> str:
    """A moment as seconds since the recording started: +1.234567 s."""
    if ts_ns is None:
        return "–"
    return f"+{(ts_ns - t0) / 1e9:.6f} s"


class BusyCores(TypedDict):
    """The machine's busy cores per bucket (the analysis' `cpu` section, record --sched)."""

    bucket_ns: int
    start_ns: list[int]
    cores: list[float]


def busy_cores(a: Analysis) -> BusyCores | None:
    """The `cpu` section's busy-cores timeline, or None without scheduler data."""
    cpu = a.sections.get("cpu")
    bc = cpu.get("busy_cores") if isinstance(cpu, Mapping) else None
    if not isinstance(bc, Mapping):
        return None
    starts = [int(x) for x in bc.get("start_ns") or []]
    cores = [float(x) for x in bc.get("cores") or []]
    if len(starts) != len(cores):
        return None
    return BusyCores(bucket_ns=_int(bc.get("bucket_ns")) or 0, start_ns=starts, cores=cores)
