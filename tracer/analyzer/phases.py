"""Milestones and phases: named moments and the durations between them.

Contract: ``Events(trace, procs, waits)`` answers ``occurrences(spec)`` -> [(ts_ns, proc)] sorted by
time, for a moment spec. Specs are the COND syntax of tracer.conditions (exec:, exit:, listen:,
connect-ok:, log:, link-up:, addr:) plus three the analyzer adds:

  connect:PORT|PATH        a connect attempt, whatever its outcome
  poll-end:PORT|PATH       the end of a poll loop to that endpoint (a `poll` wait's ended_ns)
  listen-endpoint:PATTERN  a listen whose endpoint matches an fnmatch pattern ("unix:*kine.sock")

Log lines without a pid (the recorded command's own output, captured from its pipes) belong to the
recorded command: its process when it is alive at that moment, else the process of its tree
closest to it that is (``log_owner``). Only with no recorded command do they have no process.

A phase runs from the earliest occurrence of any of its start specs (with ``"pick":
"first-listed"``: of the first listed spec that occurred) to the earliest occurrence of any of its
end specs at or after that start. Events that are not in the trace make the phase
absent (with the reason), never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracer import conditions
from tracer._errors import UsageError
from tracer.analyzer.model import MomentJson, PhaseJson
from tracer.analyzer.profiles import endpoint_matches
from tracer.analyzer.tree import Processes
from tracer.analyzer.waits import Wait
from tracer.schema import Trace

EXTRA_KINDS = ("connect", "poll-end", "listen-endpoint")

Occurrence = tuple[int, "int | None"]


def validate(spec: str) -> str:
    """A UsageError for a spec neither tracer.conditions nor the analyzer understands."""
    kind, sep, value = spec.partition(":")
    if kind in EXTRA_KINDS:
        if not sep or not value:
            raise UsageError(f"condition {spec!r}: {kind} needs a value")
        return spec
    conditions.parse(spec)
    return spec


class Events:
    def __init__(
        self,
        trace: Trace,
        procs: Processes,
        waits: list[Wait],
        log_owner: Callable[[int], int | None] | None = None,
    ) -> None:
        self.trace = trace
        self.procs = procs
        self.waits = waits
        #: ts -> the process a log line without a pid belongs to (None: nobody)
        self.log_owner = log_owner or (lambda ts: None)
        self._cache: dict[str, list[Occurrence]] = {}
        self._tables = {n: trace.table(n) for n in ("process", "socket", "log", "netlink")}
        self._by_kind: dict[str, pa.ChunkedArray] = {}

    def occurrences(self, spec: str) -> list[Occurrence]:
        if spec not in self._cache:
            self._cache[spec] = self._compute(spec)
        return self._cache[spec]

    def first(
        self, specs: list[str], at_or_after: int | None = None
    ) -> tuple[str, int, int | None] | None:
        """(spec, ts, proc) of the earliest occurrence of any spec (at or after a time)."""
        best: tuple[str, int, int | None] | None = None
        for spec in specs:
            for ts, proc in self.occurrences(spec):
                if at_or_after is not None and ts < at_or_after:
                    continue
                if best is None or ts < best[1]:
                    best = (spec, ts, proc)
                break
        return best

    def _kind_mask(self, kind: str) -> pa.ChunkedArray:
        """Which socket rows are of one kind: computed once (every connect spec reuses it) and
        kept as a mask, since a filtered copy of the socket table costs its size again."""
        if kind not in self._by_kind:
            st = self._tables["socket"]
            self._by_kind[kind] = pc.fill_null(pc.equal(st["kind"], kind), False)
        return self._by_kind[kind]

    def _rows(self, t: pa.Table, mask: Any, ts_col: str = "ts_ns") -> list[Occurrence]:
        hits = t.filter(mask)
        if hits.num_rows == 0:
            return []
        ts = pc.fill_null(hits[ts_col], 0)
        times = [int(x) for x in ts.to_pylist()]
        procs: list[int | None] = [None] * hits.num_rows
        if "pid" in hits.column_names:
            has_pid = pc.is_valid(hits["pid"])
            rows = pc.indices_nonzero(has_pid).to_pylist()
            if rows:
                found = self.procs.assign(hits["pid"].filter(has_pid), ts.filter(has_pid))
                for r, idx in zip(rows, found.tolist()):
                    procs[r] = idx
            if "source" in hits.column_names and len(rows) < hits.num_rows:  # the log table
                for r in pc.indices_nonzero(pc.invert(has_pid)).to_pylist():
                    procs[r] = self.log_owner(times[r])
        occ: list[Occurrence] = list(zip(times, procs))
        occ.sort(key=lambda o: o[0])
        return occ

    def _compute(self, spec: str) -> list[Occurrence]:
        kind, _, value = spec.partition(":")
        if kind == "poll-end":
            return sorted(
                (w.ended_ns, w.waiter)
                for w in self.waits
                if w.kind == "poll"
                and w.ended_ns is not None
                and w.endpoint
                and _ep_match(value, w.endpoint)
            )
        if kind in ("connect", "listen-endpoint"):
            st = self._tables["socket"]
            if st.num_rows == 0:
                return []
            want = "connect" if kind == "connect" else "listen"
            of_kind = self._kind_mask(want)
            if kind == "connect" and value.isdigit():  # vectorized: the common case
                eq = pc.equal(st["port"], int(value))
                return self._rows(st, pc.fill_null(pc.and_(of_kind, eq), False))
            if kind == "connect" and value.startswith(("/", "@")):
                eq = pc.equal(st["endpoint"], "unix:" + value)
                return self._rows(st, pc.fill_null(pc.and_(of_kind, eq), False))
            sel = st.filter(of_kind)
            eps = pc.fill_null(sel["endpoint"], "").to_pylist()
            if kind == "connect":
                keep = [_ep_match(value, e) for e in eps]
            else:
                ok = pc.fill_null(pc.equal(pc.fill_null(sel["ret"], 0), 0), False).to_pylist()
                keep = [o and fnmatchcase(e, value) for e, o in zip(eps, ok)]
            return self._rows(sel, pa.array(keep, pa.bool_()))
        cond = conditions.parse(spec)
        t, mask = conditions.match_mask(cond, self._tables)
        if len(mask) == 0:
            return []
        return self._rows(t, mask, "outcome_ns" if cond.kind == "connect-ok" else "ts_ns")


def _ep_match(value: str, endpoint: str) -> bool:
    if value.isdigit():
        return endpoint_matches(value, endpoint)
    if value.startswith(("/", "@")):
        return endpoint == "unix:" + value
    return endpoint_matches(value, endpoint)


def phase_list(
    events: Events, phases: list[dict[str, Any]], describe: Callable[..., MomentJson]
) -> list[PhaseJson]:
    out: list[PhaseJson] = []
    for ph in phases:
        starts = [str(s) for s in ph.get("start") or []]
        ends = [str(s) for s in ph.get("end") or []]
        item: PhaseJson = {
            "name": ph["name"],
            "start_ns": None,
            "end_ns": None,
            "duration_ns": None,
            "start_event": None,
            "end_event": None,
            "missing": None,
            "defined_by": {"start": starts, "end": ends},
        }
        if ph.get("pick") == "first-listed":
            # the specs are a preference order (e.g. the listen, else a log line): the first
            # that happened defines the start, even if a later-listed one happened earlier
            s = next((x for x in (events.first([sp]) for sp in starts) if x is not None), None)
        else:
            s = events.first(starts)
        if s is None:
            item["missing"] = f"start event not in trace ({' or '.join(starts)})"
            out.append(item)
            continue
        item["start_ns"] = s[1]
        item["start_event"] = describe(s)
        e = events.first(ends, at_or_after=s[1])
        if e is None:
            item["missing"] = f"end event not in trace after the start ({' or '.join(ends)})"
            out.append(item)
            continue
        item["end_ns"] = e[1]
        item["end_event"] = describe(e)
        item["duration_ns"] = e[1] - s[1]
        out.append(item)
    return out


def first_listens(trace: Trace, limit: int = 200) -> list[tuple[str, int, int]]:
    """(endpoint, ts, row) of the first successful listen on each endpoint."""
    st = trace.table("socket")
    if st.num_rows == 0:
        return []
    m = pc.fill_null(
        pc.and_kleene(pc.equal(st["kind"], "listen"), pc.equal(pc.fill_null(st["ret"], 0), 0)),
        False,
    )
    rows = pc.indices_nonzero(m).to_numpy()
    if len(rows) == 0:
        return []
    sel = st.take(pa.array(rows))
    eps = pc.fill_null(sel["endpoint"], "").to_pylist()
    ts = np.asarray(pc.fill_null(sel["ts_ns"], 0).to_numpy(zero_copy_only=False), np.int64)
    seen: dict[str, tuple[int, int]] = {}
    for k in np.argsort(ts, kind="stable").tolist():
        seen.setdefault(eps[k], (int(ts[k]), int(rows[k])))
    out = sorted(((e, t, r) for e, (t, r) in seen.items()), key=lambda x: x[1])
    return out[:limit]


def new_interfaces(trace: Trace, after_ns: int, limit: int = 200) -> list[tuple[str, str, int]]:
    """(milestone kind, interface name, ts) of the first "up" (link-up) and the first address
    (addr) of every interface created during the trace, in time order.

    The recorder learns the links that exist at attach silently, so each link_new row is a
    change; an interface was CREATED during the trace when its first row (by netns and ifindex)
    is a link_new after the trace start in state "down" (the kernel creates links down; the
    first row of a link that existed before is a change of it, like going up)."""
    nt = trace.table("netlink")
    if nt.num_rows == 0:
        return []
    t = nt.select(["ts_ns", "kind", "ifindex", "ifname", "state", "netns"]).sort_by("ts_ns")
    created: set[tuple[str, int]] = set()
    seen: set[tuple[str, int]] = set()
    out: dict[tuple[str, str, int], tuple[str, str, int]] = {}
    for r in t.to_pylist():
        if r["ifindex"] is None or r["ts_ns"] is None:
            continue
        link = (r["netns"] or "", int(r["ifindex"]))
        if link not in seen:
            seen.add(link)
            if r["kind"] == "link_new" and r["state"] == "down" and r["ts_ns"] > after_ns:
                created.add(link)
        if link not in created or not r["ifname"]:
            continue
        if r["kind"] == "link_new" and r["state"] == "up":
            out.setdefault(("link-up", *link), ("link-up", r["ifname"], int(r["ts_ns"])))
        elif r["kind"] == "addr_new":
            out.setdefault(("addr", *link), ("addr", r["ifname"], int(r["ts_ns"])))
    return sorted(out.values(), key=lambda x: (x[2], x[1]))[:limit]
