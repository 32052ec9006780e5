"""Module loads per loader: which modules each `modprobe` (or any caller of init_module /
finit_module) loaded, dependencies included, in order, and how long each load took.

One `modprobe br_netfilter` loads llc, stp, bridge and br_netfilter: one (f)init_module call
each, in dependency order. The collector names every successful call after the module_load
it caused (assemble.py) and keeps the syscall's entry time (`enter_ns`, schema 1.2), so a
load's duration is exact: syscall entry to return, the kernel's own init work included. A
failed call (EEXIST: already loaded, loaded concurrently by someone else) has no name; it is
kept with its return value because a caller that hit it still paid for the call.
"""

from __future__ import annotations

from typing import Any

from tracer.analyzer.model import ModuleLoaderJson
from tracer.analyzer.tree import Processes
from tracer.schema import Trace

SYSCALLS = ("init_module", "finit_module")


def loads_by_loader(
    trace: Trace, procs: Processes, label: Any, members: set[int] | None
) -> list[ModuleLoaderJson]:
    """Per calling process (first load first): {pid, key, command, loads: [{module, syscall,
    start_ns, end_ns, duration_ns, ret}], total_ns}. `label(idx)` names a process (redacted);
    `members`: the process instances in scope (None: all)."""
    mt = trace.table("module")
    if mt.num_rows == 0:
        return []
    pidx = procs.assign(mt["pid"], mt["ts_ns"])
    cols = ["ts_ns", "kind", "name", "ret"] + (
        ["enter_ns"] if "enter_ns" in mt.column_names else []
    )
    by_proc: dict[int, ModuleLoaderJson] = {}
    for k, r in enumerate(mt.select(cols).to_pylist()):
        if r["kind"] not in SYSCALLS:
            continue
        idx = int(pidx[k])
        if idx < 0 or (members is not None and idx not in members):
            continue
        end = int(r["ts_ns"] or 0)
        start = r.get("enter_ns")
        start = int(start) if start else None
        entry = by_proc.get(idx)
        if entry is None:
            p = procs.procs[idx]
            entry = by_proc[idx] = {
                "pid": p.pid, "key": p.key, "command": label(idx), "loads": [], "total_ns": 0,
            }
        dur = end - start if start is not None and end >= start else None
        entry["loads"].append({
            "module": r["name"] or None,
            "syscall": r["kind"],
            "start_ns": start,
            "end_ns": end,
            "duration_ns": dur,
            "ret": r["ret"],
        })
        entry["total_ns"] += dur or 0
    out = list(by_proc.values())
    for e in out:
        e["loads"].sort(key=lambda x: x["end_ns"])
    out.sort(key=lambda e: e["loads"][0]["end_ns"] if e["loads"] else 0)
    return out


def loaded_names(loaders: list[ModuleLoaderJson]) -> dict[int, list[str]]:
    """pid -> the modules that process loaded (successful, named loads), in order."""
    return {
        int(e["pid"]): [x["module"] for x in e["loads"] if x["module"] and x["ret"] == 0]
        for e in loaders
    }


__all__ = ["SYSCALLS", "loaded_names", "loads_by_loader"]
