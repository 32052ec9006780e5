"""What every shareable output (HTML report, compare, Perfetto export) reads from a trace.

Pure functions over a :class:`tracer.schema.Trace` and the analyzer's result dict. They normalize
the analyzer's JSON (read leniently with ``.get``: the report must keep working when the analyzer
adds keys) and pull the per-event detail the analysis summarizes away (every connect attempt,
listen, exec, module load) from the trace tables with pyarrow compute.

Redaction happens here, once: every argv and free-text field that leaves this module went
through :mod:`tracer.redact` unless ``redact=False``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.compute as pc

from tracer.redact import redact_argv, redact_text
from tracer.schema import Trace

#: Critical-path segment kinds, in the order a legend shows them.
SEGMENT_KINDS = (
    "run",
    "wait:listener",
    "wait:poll",
    "wait:poll-lag",
    "wait:child",
    "wait:module",
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


def _text(v: Any, redact: bool) -> str:
    s = _str(v)
    return redact_text(s) if redact else s


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


def segments(result: Mapping[str, Any], redact: bool = True) -> list[SegmentRow]:
    out: list[SegmentRow] = []
    for s in result.get("critical_path") or []:
        start, end = _int(s.get("start_ns")), _int(s.get("end_ns"))
        if start is None or end is None:
            continue
        out.append(
            SegmentRow(
                start_ns=start,
                end_ns=end,
                kind=_str(s.get("kind")) or "run",
                label=_text(s.get("label"), redact),
                pid=_int(s.get("pid")),
                comm=_str(s.get("comm")),
            )
        )
    return out


def waits(result: Mapping[str, Any], redact: bool = True) -> list[WaitRow]:
    out: list[WaitRow] = []
    for w in result.get("waits") or []:
        wpid, wcomm = _who(w.get("waiter"))
        tpid, tcomm = _who(w.get("target"))
        out.append(
            WaitRow(
                kind=_str(w.get("kind")),
                endpoint=_text(w.get("endpoint"), redact)
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
                reason=_text(w.get("reason"), redact),
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


def phases(result: Mapping[str, Any], redact: bool = True) -> list[PhaseRow]:
    raw = result.get("phases") or []
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
                name=_text(name, redact),
                start_ns=start,
                end_ns=end,
                duration_ns=dur,
                defined_by=_text(defined, redact),
            )
        )
    return out


def milestones(result: Mapping[str, Any], redact: bool = True) -> list[MilestoneRow]:
    raw = result.get("milestones") or []
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = sorted(raw.items())
    else:
        items = [(_str(m.get("name") or m.get("label") or m.get("kind")), m) for m in raw]
    out: list[MilestoneRow] = []
    for name, m in items:
        ts = _int(m) if not isinstance(m, Mapping) else _int(m.get("ts_ns", m.get("t_ns")))
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
                    if k not in ("name", "label", "ts_ns", "t_ns", "key")
                    and m[k] not in (None, "", [])
                ]
                detail = ", ".join(bits)
        out.append(MilestoneRow(name=_text(name, redact), ts_ns=ts, detail=_text(detail, redact)))
    out.sort(key=lambda r: (r["ts_ns"], r["name"]))
    return out


def processes(result: Mapping[str, Any], redact: bool = True) -> list[ProcessRow]:
    on_path = {s["pid"] for s in segments(result, redact=False) if s["pid"] is not None}
    raw = result.get("processes") or []
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
                exe=_text(p.get("exe"), redact),
                argv=redact_argv(argv) if redact else argv,
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


def _columns(
    table: pa.Table,
    mask: Any,
    names: Sequence[str],
    result: Mapping[str, Any] | None = None,
) -> dict[str, list[Any]]:
    t = table.filter(pc.fill_null(mask, False))
    if result is not None:
        t = in_scope(t, result)
    t = t.select(list(names)).sort_by([("ts_ns", "ascending")])
    return {n: t.column(n).to_pylist() for n in names}


def in_scope(table: pa.Table, result: Mapping[str, Any]) -> pa.Table:
    """The rows (pid, ts_ns) of the processes the analysis shows, when it was scoped to the
    recorded command's tree (its `processes` list: the tree and whoever it waited for)."""
    if (result.get("scope") or {}).get("mode") != "tree" or table.num_rows == 0:
        return table
    spans: dict[int, list[tuple[int, int]]] = {}
    for p in result.get("processes") or []:
        pid = _int(p.get("pid"))
        if pid is None:
            continue
        lo = _int(p.get("start_ns"))
        hi = _int(p.get("end_ns"))
        spans.setdefault(pid, []).append((-1 if lo is None else lo, 2**63 if hi is None else hi))
    cand = pc.fill_null(pc.is_in(table["pid"], pa.array(sorted(spans), pa.int32())), False)
    idx = pc.indices_nonzero(cand)
    rows = idx.to_pylist()
    pids = table["pid"].take(idx).to_pylist()
    ts = pc.fill_null(table["ts_ns"].take(idx), 0).to_pylist()
    # pid reuse: the row must also fall inside one of that pid's shown lifetimes
    keep = [r for r, p, t in zip(rows, pids, ts) if any(lo <= t <= hi for lo, hi in spans[p])]
    return table.take(pa.array(keep, pa.int64()))


def active_pids(trace: Trace, lo: int, hi: int) -> set[int]:
    """pids with a process, socket or module event in [lo, hi]."""
    out: set[int] = set()
    for name in ("process", "socket", "module"):
        t = trace.table(name)
        if t.num_rows == 0:
            continue
        ts = t["ts_ns"]
        m = pc.fill_null(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi)), False)
        out.update(x for x in pc.unique(t.filter(m)["pid"]).to_pylist() if x is not None)
    return out


def connects(trace: Trace, result: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    """Every connect attempt (columnar), in time order (in the analysis' scope if given)."""
    sock = trace.table("socket")
    return _columns(
        sock,
        pc.equal(sock["kind"], "connect"),
        ("ts_ns", "outcome_ns", "pid", "comm", "endpoint", "outcome", "outcome_errno", "ret"),
        result,
    )


def listens(trace: Trace, result: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    """Every successful listen (columnar), in time order (in the analysis' scope if given)."""
    sock = trace.table("socket")
    ok = pc.or_kleene(pc.is_null(sock["ret"]), pc.equal(sock["ret"], 0))
    return _columns(
        sock,
        pc.and_kleene(pc.equal(sock["kind"], "listen"), ok),
        ("ts_ns", "pid", "comm", "endpoint"),
        result,
    )


def execs(
    trace: Trace, redact: bool = True, result: Mapping[str, Any] | None = None
) -> dict[str, list[Any]]:
    """Every successful exec (columnar) with the program's basename and (redacted) argv."""
    proc = trace.table("process")
    cols = _columns(
        proc,
        pc.equal(proc["kind"], "exec"),
        ("ts_ns", "pid", "ppid", "comm", "filename", "argv"),
        result,
    )
    cols["program"] = [
        os.path.basename(f) if f else (c or "?") for f, c in zip(cols["filename"], cols["comm"])
    ]
    argvs = [list(a or []) for a in cols["argv"]]
    cols["argv"] = [redact_argv(a) for a in argvs] if redact else argvs
    return cols


def module_loads(trace: Trace, result: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    mod = trace.table("module")
    return _columns(
        mod,
        pc.is_in(mod["kind"], pa.array(["load", "init_module", "finit_module"])),
        ("ts_ns", "kind", "name", "pid", "comm", "ret"),
        result,
    )


def _probes_unavailable(trace_facts: Mapping[str, Any], meta: Mapping[str, Any]) -> list[str]:
    for source in (trace_facts, meta):
        for key in ("probes_unavailable", "unavailable_probes"):
            v = source.get(key)
            if isinstance(v, Mapping):
                return [f"{k}: {v[k]}" for k in sorted(v)]
            if isinstance(v, list):
                return [_event_text(x) if isinstance(x, Mapping) else str(x) for x in v]
        probes = source.get("probes")
        if isinstance(probes, Mapping):
            out = []
            for name in sorted(probes):
                p = probes[name]
                if isinstance(p, Mapping) and not p.get("attached", True):
                    out.append(f"{name}: {p.get('reason') or 'unavailable'}")
                elif isinstance(p, str) and p not in ("attached", "ok"):
                    out.append(f"{name}: {p}")
            if out:
                return out
    return []


def facts(trace: Trace, result: Mapping[str, Any], redact: bool = True) -> Facts:
    meta = trace.meta
    tf: Mapping[str, Any] = result.get("trace") or {}

    def pick(*keys: str) -> Any:
        for k in keys:
            for src in (tf, meta):
                if src.get(k) not in (None, ""):
                    return src[k]
        return None

    start = _int(meta.get("start_ns")) or 0
    end = _int(pick("end_ns", "stop_ns"))
    if end is None:
        dur = _int(pick("duration_ns"))
        end = start + dur if dur is not None else _int(result.get("end_ns")) or start
    cmd = pick("command", "target_command", "cmd")
    if isinstance(cmd, list):
        words = [str(c) for c in cmd]
        cmd = " ".join(redact_argv(words) if redact else words)
    # the larger count wins: the analyzer may add losses it found (e.g. torn tails) to meta's
    lost = max(
        _int(meta.get("lost_events")) or 0,
        _int(tf.get("lost_events")) or 0,
        _int(result.get("lost_events")) or 0,
    )
    return Facts(
        name=os.path.basename(os.path.normpath(str(trace.path))) or "trace",
        hostname=_str(pick("hostname", "host")),
        kernel=_str(pick("kernel", "kernel_release")),
        k3s_version=_str(pick("k3s_version"))
        + (f" ({_str(tf.get('k3s_commit'))})" if tf.get("k3s_commit") else ""),
        command=_text(cmd, redact),
        start_ns=start,
        end_ns=end,
        duration_ns=max(0, end - start),
        lost_events=lost,
        probes_unavailable=[_text(p, redact) for p in _probes_unavailable(tf, meta)],
        truncated=[f"{k}: {v}" for k, v in sorted(trace.truncated.items())],
        complete=meta.get("complete") if isinstance(meta.get("complete"), bool) else None,
        profile=_str(result.get("profile")),
        scope=_scope_text(result),
        end_reached=bool(result.get("end_reached")),
        analysis_start_ns=_int(result.get("start_ns")) or start,
        analysis_end_ns=_int(result.get("end_ns")) or end,
        total_ns=_int(result.get("total_ns")) or 0,
    )


def _scope_text(result: Mapping[str, Any]) -> str:
    sc = result.get("scope")
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
    if f["complete"] is False:
        out.append("The recorder did not stop cleanly: the trace ends at its last flush.")
    if not f["end_reached"]:
        out.append(
            "The end milestone was never reached: there is no critical path to it "
            "(pick one with --end COND)."
        )
    return out


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
