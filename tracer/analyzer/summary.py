"""Path summary pass: the critical path aggregated by executable and by component, and the
collapsed view the text prints (a daemon running 60 iptables one after the other is one line:
"iptables x60", not 120 alternating run / wait:child lines).

Pure functions over the Analysis' JSON parts (segments and processes), so the text and the
report read the same numbers as `analyze --json` (section ``path_summary``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracer.analyzer.model import PathShareJson, PathSummaryJson, ProcessJson, SegmentJson

#: segment kinds that are a helper process the path waited for
HELPER_KINDS = ("wait:child", "wait:module")
#: a run of at least this many consecutive helper segments of one executable is collapsed
MIN_COLLAPSED = 3
UNKNOWN = "(no process)"
NO_COMPONENT = "other"


def executable(p: ProcessJson | None) -> str:
    """The program a process ran last: its exe's basename, else its comm."""
    if p is None:
        return UNKNOWN
    exe = p.get("exe") or ""
    return exe.rsplit("/", 1)[-1] or p.get("comm") or "?"


#: segment kinds whose time is their own process's work (their components split it)
_OWN_KINDS = ("run", "wait:wakeup", "wait:child", "wait:module")


def summarize(
    segments: list[SegmentJson],
    processes: list[ProcessJson],
    total_ns: int | None,
    waiter_components: list[str | None] | None = None,
) -> PathSummaryJson | None:
    """{"by_executable": [...], "by_component": [...]} (None without a critical path); rows:
    name, segments, processes, total_ns, pct (of the path), longest first.

    With stacks (waiter_components given: per segment, its wait's waiter component), a
    segment of a process's own work is split by its on-CPU `components` shares, and a wait
    segment is charged to the component that waited; else to the process's component."""
    if not segments or not total_ns:
        return None
    by_key = {p["key"]: p for p in processes}

    def own(p: ProcessJson | None) -> str:
        return UNKNOWN if p is None else (p.get("component") or NO_COMPONENT)

    def parts(i: int, s: SegmentJson, p: ProcessJson | None) -> list[tuple[str, int]]:
        if waiter_components is None:
            return [(own(p), s["duration_ns"])]
        comps = {k: v for k, v in (s.get("components") or {}).items() if not k.startswith("(")}
        if s["kind"] in _OWN_KINDS and sum(comps.values()) > 0:
            from tracer.analyzer.stacks import scaled

            return list(scaled(comps, s["duration_ns"]).items())
        return [(waiter_components[i] or own(p), s["duration_ns"])]

    def table(name_of: Any, split: bool = False) -> list[PathShareJson]:
        acc: dict[str, dict[str, Any]] = {}
        for i, s in enumerate(segments):
            p = by_key.get(s["key"]) if s["key"] is not None else None
            for name, ns in parts(i, s, p) if split else [(name_of(p), s["duration_ns"])]:
                row = acc.setdefault(name, {"segments": 0, "keys": set(), "total_ns": 0})
                row["segments"] += 1
                row["total_ns"] += ns
                if s["key"] is not None:
                    row["keys"].add(s["key"])
        out: list[PathShareJson] = [
            {
                "name": name,
                "segments": r["segments"],
                "processes": len(r["keys"]),
                "total_ns": r["total_ns"],
                "pct": round(100.0 * r["total_ns"] / total_ns, 2),
            }
            for name, r in acc.items()
        ]
        out.sort(key=lambda r: (-r["total_ns"], r["name"]))
        return out

    return {
        "by_executable": table(executable),
        "by_component": table(own, split=True),
    }


@dataclass
class Collapsed:
    """Consecutive segments shown as one line: `count` helper runs of `executable`, with the
    waiter's own runs between them."""

    first: int  # index of the first segment
    last: int  # index of the last segment (a helper segment)
    kind: str
    executable: str
    count: int
    helper_ns: int
    between: int  # the waiter's segments between the helpers
    between_ns: int
    waiter: str  # "comm[pid]" of those runs

    @property
    def duration_ns(self) -> int:
        return self.helper_ns + self.between_ns


def collapse(
    segments: list[SegmentJson], processes: list[ProcessJson]
) -> list[SegmentJson | Collapsed]:
    """The segments in order, with every run of >= MIN_COLLAPSED helper segments of the same
    executable (and only one waiter's `run` segments between them) as one Collapsed."""
    by_key = {p["key"]: p for p in processes}

    def exe(s: SegmentJson) -> str:
        return executable(by_key.get(s["key"]) if s["key"] is not None else None)

    def helper_of(s: SegmentJson, name: str) -> bool:
        return s["kind"] in HELPER_KINDS and exe(s) == name

    out: list[SegmentJson | Collapsed] = []
    i, n = 0, len(segments)
    while i < n:
        s = segments[i]
        if s["kind"] not in HELPER_KINDS:
            out.append(s)
            i += 1
            continue
        name = exe(s)
        helpers, runs = [i], []
        waiter_key: str | None = None
        k = i + 1
        while k < n:
            t = segments[k]
            if helper_of(t, name):
                helpers.append(k)
            elif (
                # the waiter's own segments between two helpers: it ran (or, itself a helper of
                # its parent, was waited on) until it started the next one
                t["kind"] in ("run", *HELPER_KINDS)
                and t["key"] is not None
                and (waiter_key is None or t["key"] == waiter_key)
                and k + 1 < n
                and helper_of(segments[k + 1], name)
            ):
                waiter_key = t["key"]
                runs.append(k)
            else:
                break
            k += 1
        if len(helpers) < MIN_COLLAPSED:
            out.append(s)
            i += 1
            continue
        w = segments[runs[0]] if runs else None
        out.append(
            Collapsed(
                first=i,
                last=helpers[-1],
                kind=s["kind"],
                executable=name,
                count=len(helpers),
                helper_ns=sum(segments[h]["duration_ns"] for h in helpers),
                between=len(runs),
                between_ns=sum(segments[r]["duration_ns"] for r in runs),
                waiter=f"{w['comm'] or '?'}[{w['pid']}]" if w is not None else "",
            )
        )
        i = helpers[-1] + 1
    return out
