"""The analyzer: what a startup WAITED on, and its exact critical path.

``analyze(trace)`` runs named passes over the trace's Arrow tables (no BCC, no root, no clock):

  tree       process instances (pid-reuse safe) with exec chains        (tree.py)
  scope      the recorded command's process tree, or everything        (scope.py)
  profile    components, endpoints, milestones, phases as data          (profiles.py)
  waits      listener / poll / child / module wait-for edges            (waits.py, polls.py)
  path       critical path from the start to the end milestone          (critical_path.py)
  phases     milestones and phase metrics                               (phases.py)

The result is the stable JSON documented in docs/analyze.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc

from tracer._errors import UsageError
from tracer.analyzer import critical_path, phases, profiles, tree, waits
from tracer.analyzer import scope as scoping
from tracer.analyzer.profiles import Profile
from tracer.analyzer.tree import Processes
from tracer.schema import Trace

ANALYSIS_VERSION = "1"
__all__ = ["ANALYSIS_VERSION", "analyze"]


def _redactor(redact: bool) -> tuple[Callable[[list[str]], list[str]], Callable[[str], str]]:
    if not redact:
        return (lambda a: list(a)), (lambda s: s)
    from tracer.redact import redact_argv, redact_text

    cache: dict[tuple[str, ...], list[str]] = {}

    def argv_r(argv: list[str]) -> list[str]:
        # thousands of helpers share a few command lines: redact each distinct one once
        key = tuple(argv)
        if key not in cache:
            cache[key] = redact_argv(list(argv))
        return list(cache[key])

    return argv_r, redact_text


def _trace_end(trace: Trace) -> int:
    for k in ("stop_ns", "end_ns"):
        v = trace.meta.get(k)
        if isinstance(v, int) and v > 0:
            return v
    last = int(trace.meta.get("start_ns") or 0)
    for name in ("process", "socket", "module", "log", "netlink"):
        t = trace.table(name)
        if t.num_rows:
            m = pc.max(t["ts_ns"]).as_py()
            if m is not None:
                last = max(last, int(m))
    return last


def _root_pid(meta: dict[str, Any]) -> int | None:
    """The pid of the command `record -- CMD` ran, when the metadata says."""
    for k in ("command_pid", "target_pid", "cmd_pid", "child_pid"):
        v = meta.get(k)
        if isinstance(v, int):
            return v
    for k in ("target", "command"):
        v = meta.get(k)
        if isinstance(v, dict) and isinstance(v.get("pid"), int):
            return int(v["pid"])
    return None


def _root_proc(procs: Processes, meta: dict[str, Any]) -> int | None:
    pid = _root_pid(meta)
    if pid is None:
        return None
    cands = [p for p in procs.procs if p.pid == pid and p.start_ns is not None]
    cands = cands or [p for p in procs.procs if p.pid == pid]
    return cands[0].idx if cands else None


def _cgroups(trace: Trace) -> dict[int, tuple[str | None, str | None, str | None]]:
    """cgroup id -> (path, systemd unit, pod uid)."""
    ct = trace.table("cgroup")
    out: dict[int, tuple[str | None, str | None, str | None]] = {}
    for r in ct.select(["cgroup_id", "path", "unit", "pod_uid"]).to_pylist():
        if r["cgroup_id"] is not None:
            out[int(r["cgroup_id"])] = (r["path"], r["unit"], r["pod_uid"])
    return out


NO_UNIT = "(no unit)"


def _group_of(
    p: tree.Proc, cgroups: dict[int, tuple[str | None, str | None, str | None]]
) -> tuple[str, str]:
    """(kind, name) of the group a process belongs to: its pod when its cgroup is a pod's (a
    pod's containers are scopes of their own), else its systemd unit, else "(no unit)"."""
    _path, unit, pod = cgroups.get(p.cgroup_id or -1, (None, None, None))
    if pod:
        return "pod", pod
    if unit:
        return "unit", unit
    return "none", NO_UNIT


def _groups(
    trace: Trace,
    procs: Processes,
    cgroups: dict[int, tuple[str | None, str | None, str | None]],
    in_scope: set[int] | None,
) -> list[dict[str, Any]]:
    """Per systemd unit / pod: processes, execs, connects, first and last activity (ns of the
    first and last process/socket/module event of its processes in the analysed trace)."""
    import numpy as np

    n = len(procs.procs)
    gid = np.full(n, -1, np.int64)
    names: list[tuple[str, str]] = []
    index: dict[tuple[str, str], int] = {}
    for p in procs.procs:
        if in_scope is not None and p.idx not in in_scope:
            continue
        group = _group_of(p, cgroups)
        gid[p.idx] = index.setdefault(group, len(names))
        if gid[p.idx] == len(names):
            names.append(group)
    k = len(names)
    nprocs = np.bincount(gid[gid >= 0], minlength=k)
    execs = np.zeros(k, np.int64)
    for p in procs.procs:
        if gid[p.idx] >= 0:
            execs[gid[p.idx]] += len(p.execs)
    connects = np.zeros(k, np.int64)
    first = np.full(k, np.iinfo(np.int64).max, np.int64)
    last = np.full(k, -1, np.int64)
    for name in ("process", "socket", "module"):
        t = trace.table(name)
        if t.num_rows == 0:
            continue
        ts = np.asarray(pc.fill_null(t["ts_ns"], 0).to_numpy(zero_copy_only=False), np.int64)
        idx = procs.assign(t["pid"], t["ts_ns"])
        g = np.where((idx >= 0) & (idx < n), gid[np.clip(idx, 0, n - 1)], -1)
        ok = g >= 0
        np.minimum.at(first, g[ok], ts[ok])
        np.maximum.at(last, g[ok], ts[ok])
        if name == "socket":
            is_connect = np.asarray(
                pc.fill_null(pc.equal(t["kind"], "connect"), False).to_numpy(
                    zero_copy_only=False
                ),
                bool,
            )
            connects += np.bincount(g[ok & is_connect], minlength=k)
    out = [
        {
            "kind": kind,
            "name": name,
            "unit": name if kind == "unit" else None,
            "pod_uid": name if kind == "pod" else None,
            "processes": int(nprocs[i]),
            "execs": int(execs[i]),
            "connects": int(connects[i]),
            "first_ns": int(first[i]) if last[i] >= 0 else None,
            "last_ns": int(last[i]) if last[i] >= 0 else None,
        }
        for i, (kind, name) in enumerate(names)
    ]
    # in order of first activity; groups without any event last
    out.sort(key=lambda g: (g["first_ns"] is None, g["first_ns"] or 0, g["name"]))
    return out


def analyze(
    trace: Trace,
    *,
    profile: str = "auto",
    start: str | None = None,
    end: str | None = None,
    redact: bool = True,
    scope: str = "auto",
) -> dict[str, Any]:
    """Analyze a loaded trace; returns the JSON-able result documented in docs/analyze.md.

    scope: "tree" (the recorded command's process tree), "all" (every process in the trace) or
    "auto" (tree when the trace has the recorded command's pid, else all)."""
    for spec in (start, end):
        if spec is not None:
            phases.validate(spec)
    if scope not in ("auto", *scoping.MODES):
        raise UsageError(f"unknown scope {scope!r}: use tree or all")
    argv_r, text_r = _redactor(redact)
    full = trace
    procs = tree.build(full)
    trace_start = int(full.meta.get("start_ns") or 0)
    trace_end = max(_trace_end(full), trace_start)
    root = _root_proc(procs, full.meta)
    mode = scope if scope != "auto" else ("tree" if root is not None else "all")
    in_scope: set[int] | None = None
    wait_view = full
    row_maps: dict[str, Any] = {}
    if mode == "tree":
        if root is None:
            raise UsageError(
                "--scope tree needs a trace recorded with `record -- CMD` (its metadata has no "
                "command_pid); use --scope all"
            )
        in_scope = scoping.tree_of(procs, root)
        trace, wait_view, row_maps = scoping.views(full, procs, in_scope)

    if profile == "auto":
        names: set[str] = set()
        for p in procs.procs:
            if in_scope is None or p.idx in in_scope:
                names.update(p.names)
        prof = profiles.detect(names)
    else:
        prof = profiles.load(profile)

    all_waits = waits.find(wait_view, procs, prof, trace_end)
    if in_scope is not None:
        all_waits = [w for w in all_waits if w.waiter in in_scope]
        _remap_evidence(all_waits, row_maps)
    events = phases.Events(trace, procs, all_waits)
    cgroups = _cgroups(trace)

    def comm(idx: int | None) -> str | None:
        return None if idx is None or idx < 0 else procs.procs[idx].comm

    def pid(idx: int | None) -> int | None:
        return None if idx is None or idx < 0 else procs.procs[idx].pid

    def proc_label(idx: int) -> str:
        p = procs.procs[idx]
        args = argv_r(p.argv)[1:4] if p.argv else []
        tail = (" " + " ".join(args)) if args else ""
        return text_r(f"{p.comm or '?'}{tail}")[:120]

    def helper_kind(idx: int) -> str:
        return "wait:module" if prof.is_module_helper(procs.procs[idx].names) else "wait:child"

    def describe(occ: tuple[str, int, int | None]) -> dict[str, Any]:
        spec, ts, pr = occ
        return {
            "spec": text_r(spec),
            "ts_ns": ts,
            "pid": pid(pr),
            "comm": comm(pr),
            "key": procs.procs[pr].key if pr is not None and pr >= 0 else None,
        }

    # --- start and end milestones -------------------------------------------------------
    start_ns, start_reached, start_by = trace_start, True, "trace start"
    if start is not None:
        s = events.first([start])
        start_reached = s is not None
        if s is not None:
            start_ns, start_by = s[1], start
    else:
        s = events.first([str(x) for x in prof.entries("start")])
        if s is not None:
            start_ns, start_by = s[1], s[0]
        elif root is not None and procs.procs[root].execs:
            start_ns = int(procs.procs[root].execs[0]["ts_ns"])
            start_by = "first exec of the recorded command"

    end_ns: int | None = None
    end_proc: int | None = None
    end_by = ""
    if end is not None:
        e = events.first([end], at_or_after=start_ns)
        end_by = end
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
        end_proc, end_ns, end_by = _default_end(procs, root, trace_end)
    end_reached = start_reached and end_ns is not None and end_ns >= start_ns

    # --- critical path ------------------------------------------------------------------
    segments: list[critical_path.Segment] = []
    if end_reached:
        assert end_ns is not None
        segments = critical_path.walk(
            procs, all_waits, start_ns, end_ns, end_proc, proc_label, helper_kind
        )
    total = (end_ns - start_ns) if end_reached and end_ns is not None else None

    # --- output -------------------------------------------------------------------------
    keys = {p.idx: p.key for p in procs.procs}
    wait_list = [_wait_json(w, procs, prof, text_r) for w in all_waits]
    path_json = [
        {
            "start_ns": s.start_ns,
            "end_ns": s.end_ns,
            "duration_ns": s.end_ns - s.start_ns,
            "kind": s.kind,
            "label": s.label,
            "pid": pid(s.proc),
            "comm": comm(s.proc),
            "key": keys.get(s.proc) if s.proc is not None else None,
            "wait": s.wait,
            "pct": round(100.0 * (s.end_ns - s.start_ns) / total, 2) if total else None,
        }
        for s in segments
    ]

    milestones = []
    if start_reached:
        milestones.append(
            {
                "name": "start",
                "spec": text_r(start_by),
                "ts_ns": start_ns,
                "pid": None,
                "comm": None,
            }
        )
    for m in prof.entries("milestones"):
        occ = events.first([str(m["cond"])])
        if occ is not None:
            d = describe(occ)
            milestones.append({"name": text_r(str(m["name"])), **d})
    if prof.data.get("listen_milestones"):
        for ep, ts, _row in phases.first_listens(trace):
            occ = events.first([f"listen-endpoint:{ep}"])
            pr = occ[2] if occ else None
            milestones.append(
                {
                    "name": text_r(f"listening {ep}"),
                    "spec": text_r(f"listen {ep}"),
                    "ts_ns": ts,
                    "pid": pid(pr),
                    "comm": comm(pr),
                    "key": keys.get(pr) if pr is not None else None,
                }
            )
    if prof.data.get("network_milestones"):
        for what, ifname, ts in phases.new_interfaces(trace, trace_start):
            milestones.append(
                {
                    "name": text_r(
                        f"{ifname} up" if what == "link-up" else f"{ifname} has an address"
                    ),
                    "spec": text_r(f"{what}:{ifname}"),
                    "ts_ns": ts,
                    "pid": None,
                    "comm": None,
                    "key": None,
                }
            )
    if end_reached:
        milestones.append(
            {
                "name": "end",
                "spec": text_r(end_by),
                "ts_ns": end_ns,
                "pid": pid(end_proc),
                "comm": comm(end_proc),
                "key": keys.get(end_proc) if end_proc is not None else None,
            }
        )
    milestones.sort(key=lambda m: (m["ts_ns"], m["name"]))

    shown: set[int] | None = None
    if in_scope is not None:
        # the tree, plus whoever it waited for and whatever the path and milestones went through
        shown = set(in_scope)
        for w in all_waits:
            shown.update(x for x in (w.waiter, w.target) if x is not None and x >= 0)
        shown.update(s.proc for s in segments if s.proc is not None and s.proc >= 0)
        shown.update(x for x in (end_proc,) if x is not None and x >= 0)
    return {
        "analysis_version": ANALYSIS_VERSION,
        "profile": prof.name,
        "start_ns": start_ns,
        "end_ns": end_ns if end_reached else None,
        "total_ns": total,
        "start_reached": start_reached,
        "end_reached": end_reached,
        "start_by": text_r(start_by),
        "end_by": text_r(end_by),
        "critical_path": path_json,
        "waits": wait_list,
        "milestones": milestones,
        "phases": phases.phase_list(events, prof.entries("phases"), describe),
        "counts": _counts(trace, procs, all_waits, in_scope),
        "lost_events": trace.lost_events,
        "processes": [
            _proc_json(p, keys, prof, cgroups, argv_r, text_r, in_scope)
            for p in procs.procs
            if shown is None or p.idx in shown
        ],
        "groups": _groups(trace, procs, cgroups, in_scope),
        "scope": _scope_json(mode, root, procs, in_scope),
        "trace": _facts(full, trace_start, trace_end, argv_r, text_r),
    }


def _scope_json(
    mode: str, root: int | None, procs: Processes, in_scope: set[int] | None
) -> dict[str, Any]:
    n = len(procs.procs)
    kept = n if in_scope is None else len(in_scope)
    return {
        "mode": mode,
        "root": _party(root, procs) if mode == "tree" else None,
        "processes": kept,
        "left_out": n - kept,
    }


def _remap_evidence(all_waits: list[waits.Wait], row_maps: dict[str, Any]) -> None:
    """Evidence row numbers of a scoped view -> row numbers of the trace's own tables."""
    for w in all_waits:
        for table, rows in w.evidence.items():
            m = row_maps.get(table)
            if m is not None:
                w.evidence[table] = [int(m[r]) for r in rows]


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


def _party(idx: int | None, procs: Processes) -> dict[str, Any] | None:
    if idx is None or idx < 0:
        return None
    p = procs.procs[idx]
    return {"pid": p.pid, "comm": p.comm, "key": p.key}


def _wait_json(
    w: waits.Wait, procs: Processes, prof: Profile, text_r: Callable[[str], str]
) -> dict[str, Any]:
    info = prof.endpoint_info(w.endpoint) if w.kind in ("listener", "poll") else None
    return {
        "kind": w.kind,
        "endpoint": w.endpoint,
        "component": info.get("component") if info else None,
        "waiter": _party(w.waiter, procs),
        "target": _party(w.target, procs),
        "start_ns": w.start_ns,
        "end_ns": w.end_ns,
        "duration_ns": (w.end_ns - w.start_ns) if w.end_ns is not None else None,
        "first_attempt_ns": w.first_attempt_ns,
        "ready_ns": w.ready_ns,
        "first_ok_ns": w.first_ok_ns,
        "last_attempt_ns": w.last_attempt_ns,
        "ended_ns": w.ended_ns,
        "attempts": w.attempts,
        "interval_ns": w.interval_ns,
        "lag_ns": w.lag_ns,
        "outcomes": w.outcomes,
        "confidence": w.confidence,
        "reason": text_r(w.reason),
        "evidence": w.evidence,
    }


def _proc_json(
    p: tree.Proc,
    keys: dict[int, str],
    prof: Profile,
    cgroups: dict[int, tuple[str | None, str | None, str | None]],
    argv_r: Callable[[list[str]], list[str]],
    text_r: Callable[[str], str],
    in_scope: set[int] | None = None,
) -> dict[str, Any]:
    path, unit, pod_uid = cgroups.get(p.cgroup_id or -1, (None, None, None))
    component = prof.component_for(p.names) or prof.component_for_cgroup(path, unit)
    return {
        "key": p.key,
        "pid": p.pid,
        "parent_key": keys.get(p.parent) if p.parent is not None else None,
        "comm": p.comm,
        "exe": p.exe,
        "argv": argv_r(p.argv),
        "start_ns": p.start_ns,
        "first_seen_ns": p.first_seen_ns,
        "end_ns": p.end_ns,
        "exit_code": p.exit_code,
        "exit_signal": p.exit_signal,
        "component": component,
        "unit": unit,
        "pod_uid": pod_uid,
        "group": _group_of(p, cgroups)[1],
        "cgroup": path,
        "threads": p.threads,
        "from_snapshot": p.from_snapshot,
        "in_scope": in_scope is None or p.idx in in_scope,
        "execs": [
            {
                "ts_ns": e["ts_ns"],
                "filename": e["filename"],
                "comm": e["comm"],
                "argv": argv_r(e["argv"]),
            }
            for e in p.execs
        ],
    }


def _count(t: Any, col: str, value: str) -> int:
    if t.num_rows == 0:
        return 0
    return int(pc.sum(pc.fill_null(pc.equal(t[col], value), False).cast("int64")).as_py() or 0)


def _counts(
    trace: Trace, procs: Processes, all_waits: list[waits.Wait], in_scope: set[int] | None
) -> dict[str, Any]:
    pt, st = trace.table("process"), trace.table("socket")
    connect = pc.fill_null(pc.equal(st["kind"], "connect"), False) if st.num_rows else None
    ok = failed = 0
    if connect is not None:
        oc = st.filter(connect)["outcome"]
        ok = int(pc.sum(pc.fill_null(pc.equal(oc, "ok"), False).cast("int64")).as_py() or 0)
        failed = int(
            pc.sum(pc.fill_null(pc.is_in(oc, value_set=_failed()), False).cast("int64")).as_py()
            or 0
        )
    by_kind: dict[str, int] = {}
    for w in all_waits:
        by_kind[w.kind] = by_kind.get(w.kind, 0) + 1
    return {
        "events": sum(
            trace.table(n).num_rows for n in ("process", "socket", "module", "log", "netlink")
        ),
        "processes": len(procs.procs) if in_scope is None else len(in_scope),
        "forks": _count(pt, "kind", "fork"),
        "threads": _count(pt, "kind", "thread"),
        "execs": _count(pt, "kind", "exec"),
        "exec_failed": _count(pt, "kind", "exec_failed"),
        "exits": _count(pt, "kind", "exit"),
        "connects": _count(st, "kind", "connect"),
        "connects_ok": ok,
        "connects_failed": failed,
        "listens": _count(st, "kind", "listen"),
        "module_events": trace.table("module").num_rows,
        "log_lines": trace.table("log").num_rows,
        "waits": dict(sorted(by_kind.items())),
    }


def _failed() -> Any:
    import pyarrow as pa

    return pa.array(sorted(waits.FAILED))


def _facts(
    trace: Trace,
    start: int,
    end: int,
    argv_r: Callable[[list[str]], list[str]],
    text_r: Callable[[str], str],
) -> dict[str, Any]:
    m = trace.meta
    probes = m.get("probes") or {}
    unavailable = m.get("probes_unavailable")
    if unavailable is None and isinstance(probes, dict):
        unavailable = {
            k: v for k, v in probes.items() if isinstance(v, dict) and v.get("attached") is False
        } or None
    cmd = m.get("command") or m.get("target_command")
    version, commit, version_from = _k3s_version(trace)
    return {
        "path": os.fspath(trace.path),
        "hostname": m.get("hostname"),
        "kernel": m.get("kernel"),
        "k3s_version": version,
        "k3s_commit": commit,
        "k3s_version_from": version_from,
        "schema_version": m.get("schema_version"),
        "tracer_version": m.get("tracer_version"),
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "complete": m.get("complete"),
        "lost_events": trace.lost_events,
        "probes_unavailable": unavailable,
        "truncated_tables": dict(trace.truncated),
        "command": " ".join(argv_r([str(c) for c in cmd]))
        if isinstance(cmd, list)
        else (text_r(cmd) if isinstance(cmd, str) else None),
    }


#: k3s's first log line: `Starting k3s v1.32.4+k3s1 (6b330558)` (pkg/cli/server/server.go)
_START_LINE = re.compile(r"Starting k3s (v\d+\.\d+\.\d+[^\s()]*)(?: \(([0-9a-f]{6,40})\))?")
#: a k3s release named in an exec's path or argv: v1.32.4+k3s1 (also v1.32.4-k3s1 in file names)
_RELEASE = re.compile(r"v\d+\.\d+\.\d+[+-]k3s\d+")


def _k3s_version(trace: Trace) -> tuple[str | None, str | None, str | None]:
    """(version, commit, where from): the trace metadata, else k3s's "Starting k3s" log line,
    else a release name in the path or argv of an exec of k3s itself."""
    v = trace.meta.get("k3s_version")
    if isinstance(v, str) and v:
        return v, None, "meta"
    logs = trace.table("log")
    if logs.num_rows:
        msg = pc.fill_null(logs["message"], "")
        hits = logs.filter(pc.match_substring(msg, "Starting k3s v"))
        for text in hits.sort_by("ts_ns")["message"].to_pylist():
            m = _START_LINE.search(text or "")
            if m:
                return m.group(1), m.group(2), "log"
    pt = trace.table("process")
    if pt.num_rows:
        ex = pt.filter(pc.fill_null(pc.equal(pt["kind"], "exec"), False)).sort_by("ts_ns")
        for fn, argv in zip(ex["filename"].to_pylist(), ex["argv"].to_pylist()):
            words = [fn or "", *(argv or [])]
            if not any(os.path.basename(w).startswith("k3s") for w in words[:2]):
                continue
            for w in words:
                m = _RELEASE.search(w)
                if m:
                    return m.group(0).replace("-k3s", "+k3s"), None, "exec"
    return None, None, None
