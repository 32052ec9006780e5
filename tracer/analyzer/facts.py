"""Facts about a trace and its groups that the analysis reports as they are: trace facts, event
counts, per systemd unit / pod activity. Pure functions over the (scoped) tables."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc

from tracer.analyzer import tree, waits
from tracer.analyzer.model import CountsJson, GroupJson, TraceFacts
from tracer.analyzer.tree import Processes
from tracer.schema import Trace

#: cgroup id -> (path, systemd unit, pod uid)
Cgroups = dict[int, tuple[str | None, str | None, str | None]]

def cgroups(trace: Trace) -> Cgroups:
    """cgroup id -> (path, systemd unit, pod uid)."""
    ct = trace.table("cgroup")
    out: dict[int, tuple[str | None, str | None, str | None]] = {}
    for r in ct.select(["cgroup_id", "path", "unit", "pod_uid"]).to_pylist():
        if r["cgroup_id"] is not None:
            out[int(r["cgroup_id"])] = (r["path"], r["unit"], r["pod_uid"])
    return out


NO_UNIT = "(no unit)"


def group_of(p: tree.Proc, cgroups: Cgroups) -> tuple[str, str]:
    """(kind, name) of the group a process belongs to: its pod when its cgroup is a pod's (a
    pod's containers are scopes of their own), else its systemd unit, else "(no unit)"."""
    _path, unit, pod = cgroups.get(p.cgroup_id or -1, (None, None, None))
    if pod:
        return "pod", pod
    if unit:
        return "unit", unit
    return "none", NO_UNIT


def groups(
    trace: Trace, procs: Processes, cgroups: Cgroups, in_scope: set[int] | None
) -> list[GroupJson]:
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
        group = group_of(p, cgroups)
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
    out: list[GroupJson] = [
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


def _count(t: Any, col: str, value: str) -> int:
    if t.num_rows == 0:
        return 0
    return int(pc.sum(pc.fill_null(pc.equal(t[col], value), False).cast("int64")).as_py() or 0)


def counts(
    trace: Trace, procs: Processes, all_waits: list[waits.Wait], in_scope: set[int] | None
) -> CountsJson:
    pt, st = trace.table("process"), trace.table("socket")
    connect = pc.fill_null(pc.equal(st["kind"], "connect"), False) if st.num_rows else None
    ok = failed = 0
    if connect is not None:
        oc = pc.filter(st["outcome"], connect)  # the one column: not a copy of the table
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


def trace_facts(
    trace: Trace,
    start: int,
    end: int,
    argv_r: Callable[[list[str]], list[str]],
) -> TraceFacts:
    m = trace.recorded
    cmd = m.target_command
    version, commit, version_from = _k3s_version(trace)
    return {
        "path": os.fspath(trace.path),
        "hostname": m.hostname,
        "kernel": m.kernel,
        "k3s_version": version,
        "k3s_commit": commit,
        "k3s_version_from": version_from,
        "schema_version": m.schema_version,
        "tracer_version": m.tracer_version,
        "start_ns": start,
        "end_ns": end,
        "duration_ns": end - start,
        "complete": m.complete,
        "lost_events": m.lost_events,
        "probes_unavailable": m.probes_unavailable,
        "truncated_tables": dict(trace.truncated),
        "missing_tables": dict(trace.missing),
        "command": " ".join(argv_r(cmd)) if cmd is not None else None,
    }


#: k3s's first log line: `Starting k3s v1.32.4+k3s1 (6b330558)` (pkg/cli/server/server.go)
_START_LINE = re.compile(r"Starting k3s (v\d+\.\d+\.\d+[^\s()]*)(?: \(([0-9a-f]{6,40})\))?")
#: a k3s release named in an exec's path or argv: v1.32.4+k3s1 (also v1.32.4-k3s1 in file names)
_RELEASE = re.compile(r"v\d+\.\d+\.\d+[+-]k3s\d+")


def _k3s_version(trace: Trace) -> tuple[str | None, str | None, str | None]:
    """(version, commit, where from): k3s's "Starting k3s" log line, else a release name in
    the path or argv of an exec of k3s itself."""
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
        # only execs whose file or argv[0] is named k3s* (the test below), found column-wise:
        # a 1M-event trace has 100k+ helper execs whose argv need not become Python lists
        k3s_named = r"(^|/)k3s[^/]*$"
        argv0 = pc.binary_join(pc.list_slice(pt["argv"], 0, 1), "")
        named = pc.or_kleene(
            pc.match_substring_regex(pt["filename"], k3s_named),
            pc.match_substring_regex(argv0, k3s_named),
        )
        is_exec = pc.equal(pt["kind"], "exec")
        ex = pt.select(["ts_ns", "filename", "argv"]).filter(
            pc.fill_null(pc.and_kleene(is_exec, named), False)
        ).sort_by("ts_ns")
        for fn, argv in zip(ex["filename"].to_pylist(), ex["argv"].to_pylist()):
            words = [fn or "", *(argv or [])]
            if not any(os.path.basename(w).startswith("k3s") for w in words[:2]):
                continue
            for w in words:
                m = _RELEASE.search(w)
                if m:
                    return m.group(0).replace("-k3s", "+k3s"), None, "exec"
    return None, None, None
