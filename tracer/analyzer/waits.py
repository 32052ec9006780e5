"""Wait-for edges: who waited for what, from when to when, and the evidence.

Contract: ``find(trace, procs, profile, trace_end) -> list[Wait]`` (pure; times are trace ns).

* ``listener``: one waiter's connects to one endpoint fail (refused, enoent, ...) until the
  endpoint is listened on; from the first failed attempt to the first ok connect. A TCP connect
  to ADDR:P is served by a listen on ADDR:P, 0.0.0.0:P (IPv4 connects) or [::]:P; a unix connect
  by a listen on the same path. The listen must come at or after the first failure (a failure
  while something already listened is not waiting for a listener).
* ``poll``: a regular cadence of connects from one waiter to one endpoint, whatever their
  outcome (see polls.py). A listener wait whose attempts continue at the same cadence after the
  first ok connect (refused, refused, ok-but-not-ready, ok...) is ONE poll wait carrying the
  listener part (ready_ns = the listen, first_ok_ns, lag_ns = first_ok - listen).
* UDP connects (DNS lookups: inet, no TCP handshake, outcome ok) are never waits.
* ``child``: a parent that showed no activity (no connect/listen/fork/exec) while a child it
  started ran to its exit: it was presumably waiting for it (modprobe, iptables, sh -c ...).
* ``module``: a kernel module load, charged to the process that asked (modprobe's parent).

Spawn edges are not listed: every process's ``parent_key``/``start_ns`` is one.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracer.analyzer import polls
from tracer.analyzer.profiles import Profile, split_endpoint
from tracer.analyzer.tree import Processes, unique_sorted
from tracer.schema import Trace

#: (pid, tid, attempt time, next attempt time) -> when the answer to that attempt reached the
#: waiting thread (the end of its wait for it), None: at once or unknown (scheduler data)
Answered = Callable[[int, int, int, int], "int | None"]
#: connect outcomes that mean "nobody answered yet" (the client will retry)
FAILED = frozenset({"refused", "timeout", "unreachable", "reset", "enoent", "error", "closed"})
MAX_EVIDENCE = 200
_WILDCARD_V4 = ("0.0.0.0", "")
_WILDCARD_V6 = ("::",)


@dataclass
class Wait:
    kind: str  # listener | poll | child | module
    waiter: int | None  # process index
    start_ns: int
    end_ns: int | None  # when the waiter stopped waiting (None: still waiting at trace end)
    endpoint: str | None = None
    target: int | None = None
    first_attempt_ns: int | None = None
    ready_ns: int | None = None
    first_ok_ns: int | None = None
    last_attempt_ns: int | None = None
    ended_ns: int | None = None
    attempts: int | None = None
    interval_ns: int | None = None
    lag_ns: int | None = None
    outcomes: dict[str, int] | None = None
    confidence: float | None = None
    reason: str = ""
    evidence: dict[str, list[int]] = field(default_factory=dict)
    #: the process that called listen() when another process accepted (target) the waiter's
    #: connections: a socket inherited by fork / exec (systemd socket activation) or passed
    #: over SCM_RIGHTS (issue 29); None when the listener is the target or unknown
    listener: int | None = None


@dataclass
class _Listen:
    ts: int
    proc: int
    family: str
    addr: str
    port: int | None
    endpoint: str
    row: int | None  # socket table row, None for the pre-existing listeners table
    fd: int | None = None  # the listening fd in proc (socket table rows)


def _serves(listen: _Listen, family: str, addr: str, port: int | None, endpoint: str) -> bool:
    """Would a connect to (family, addr, port) reach this listen?"""
    if endpoint.startswith("unix:") or family == "unix":
        return listen.endpoint == endpoint
    if port is None or listen.port != port:
        return False
    if listen.addr == addr:
        return True
    if listen.family == "inet6" and listen.addr in _WILDCARD_V6:
        return True  # dual-stack [::] also takes IPv4 connects
    return listen.family == "inet" and family == "inet" and listen.addr in _WILDCARD_V4


def _listens(trace: Trace, procs: Processes, sock_idx: Any) -> dict[Any, list[_Listen]]:
    """Successful listens by port (TCP) or endpoint text (unix), each list sorted by time."""
    out: dict[Any, list[_Listen]] = defaultdict(list)
    st = trace.table("socket")
    if st.num_rows:
        rows = pc.indices_nonzero(
            pc.fill_null(
                pc.and_kleene(
                    pc.equal(st["kind"], "listen"), pc.equal(pc.fill_null(st["ret"], 0), 0)
                ),
                False,
            )
        )
        if len(rows):
            sel = st.take(rows)
            pidx = sock_idx[rows.to_numpy()]
            for k, r in enumerate(
                sel.select(["ts_ns", "family", "addr", "port", "endpoint", "fd"]).to_pylist()
            ):
                ep = r["endpoint"] or ""
                addr, port = (r["addr"] or "", r["port"])
                if port is None and not ep.startswith("unix:"):
                    addr, port = split_endpoint(ep)
                lst = _Listen(
                    int(r["ts_ns"] or 0),
                    int(pidx[k]),
                    r["family"] or "",
                    addr,
                    port,
                    ep,
                    int(rows[k].as_py()),
                    r["fd"],
                )
                out[port if port is not None and not ep.startswith("unix:") else ep].append(lst)
    lt = trace.table("listeners")
    if lt.num_rows:
        pidx = procs.assign(lt["pid"], lt["ts_ns"])
        for k, r in enumerate(lt.to_pylist()):
            ep = r["endpoint"] or ""
            addr, port = split_endpoint(ep)
            lst = _Listen(
                int(r["ts_ns"] or 0), int(pidx[k]), r["family"] or "", addr, port, ep, None
            )
            out[port if port is not None else ep].append(lst)
    for v in out.values():
        v.sort(key=lambda x: x.ts)
    return out


def _matching(
    listens: dict[Any, list[_Listen]], family: str, addr: str, port: int | None, endpoint: str
) -> list[_Listen]:
    key = endpoint if (endpoint.startswith("unix:") or port is None) else port
    return [lst for lst in listens.get(key, []) if _serves(lst, family, addr, port, endpoint)]


#: accepts this long after a wait's end still say who served it (a busy server accepts late)
ACCEPT_LAG_NS = 1_000_000_000


def _accepts(
    trace: Trace, procs: Processes, sock_idx: Any, listens: dict[Any, list[_Listen]]
) -> list[tuple[int, int, _Listen]]:
    """Every accept as (return time, accepting process, the listen it came in on), time order.

    The recorder names an accept's listening socket only when the accepting process itself
    called listen() on that fd. A socket used by another process (issue 29) is found here:
    * inherited (fork, exec: pre-fork servers, daemons that listen then daemonize): the latest
      listen on the SAME fd by the process or an ancestor, before the accept;
    * moved to another fd (systemd socket activation dup's it to fd 3 before exec) or passed
      over SCM_RIGHTS: by time: the connection an accept returns is the latest one completed
      to a listened socket before the accept returned; the most common answer over all the
      accepts of that (process, fd) names its socket.
    """
    st = trace.table("socket")
    if st.num_rows == 0:
        return []
    is_acc = pc.fill_null(
        pc.and_kleene(pc.equal(st["kind"], "accept"), pc.greater_equal(st["ret"], 0)), False
    )
    rows = pc.indices_nonzero(is_acc).to_numpy()
    if len(rows) == 0:
        return []
    every = [x for v in listens.values() for x in v]
    by_ep: dict[str, list[_Listen]] = defaultdict(list)
    by_fd: dict[tuple[int, int], list[_Listen]] = defaultdict(list)
    for x in every:
        by_ep[x.endpoint].append(x)
        if x.fd is not None:
            by_fd[(x.proc, x.fd)].append(x)
    acc = st.select(["ts_ns", "ret_ns", "fd", "endpoint"]).take(pa.array(rows)).to_pylist()
    out: list[tuple[int, int, _Listen]] = []
    unknown: dict[tuple[int, int], list[int]] = defaultdict(list)  # (proc, fd) -> ret times
    for k, r in enumerate(acc):
        proc = int(sock_idx[rows[k]])
        ts = int(r["ret_ns"] or r["ts_ns"] or 0)
        ep = r["endpoint"]
        lst = None
        if ep:
            lst = _latest([x for x in by_ep.get(ep, []) if x.proc == proc], ts) or _latest(
                by_ep.get(ep, []), ts
            )
        if lst is None and r["fd"] is not None:
            q: int | None = proc
            while q is not None and lst is None:  # the same fd, here or in an ancestor
                lst = _latest(by_fd.get((q, int(r["fd"])), []), ts)
                q = procs.procs[q].parent
        if lst is not None:
            out.append((ts, proc, lst))
        elif r["fd"] is not None:
            unknown[(proc, int(r["fd"]))].append(ts)
    if unknown:
        done = _completed_connects(st, every, listens)
        done_ts = [d for d, _ in done]
        for (proc, _fd), times in unknown.items():
            votes: dict[int, int] = defaultdict(int)
            for ts in times:
                i = bisect_right(done_ts, ts) - 1
                if i >= 0:
                    votes[id(done[i][1])] += 1
            if votes:
                best = max(votes.items(), key=lambda kv: kv[1])[0]
                lst = next(x for _, x in done if id(x) == best)
                out.extend((ts, proc, lst) for ts in times)
    out.sort(key=lambda a: a[0])
    return out


def _latest(cands: list[_Listen], ts: int) -> _Listen | None:
    before = [x for x in cands if x.ts <= ts]
    return max(before, key=lambda x: x.ts) if before else None


def _completed_connects(
    st: pa.Table, every: list[_Listen], listens: dict[Any, list[_Listen]]
) -> list[tuple[int, _Listen]]:
    """Successful connects as (completion time, the listen they reached), time order."""
    ok = pc.fill_null(
        pc.and_kleene(pc.equal(st["kind"], "connect"), pc.equal(st["outcome"], "ok")), False
    )
    sel = st.filter(ok)
    done_ts = pc.coalesce(sel["outcome_ns"], sel["ret_ns"], sel["ts_ns"]).to_pylist()
    heads = sel.select(["family", "addr", "port", "endpoint"]).to_pylist()
    served: dict[tuple[Any, ...], list[_Listen]] = {}  # one lookup per distinct target
    out: list[tuple[int, _Listen]] = []
    for done, r in zip(done_ts, heads):
        key = (r["family"] or "", r["addr"] or "", r["port"], r["endpoint"] or "")
        cands = served.get(key)
        if cands is None:
            cands = served[key] = _matching(listens, *key)
        before = [x for x in cands if x.ts <= int(done or 0)]
        if before:
            out.append((int(done or 0), before[-1]))
    out.sort(key=lambda d: d[0])
    return out


def _set_acceptor(
    w: Wait, accepts: list[tuple[int, int, _Listen]], matching: list[_Listen], trace_end: int
) -> None:
    """The wait's target is the process that accepted connections on the endpoint while the
    waiter's connects got through (the most accepts there); the process that called listen()
    is kept as `listener` when it is another one. No accept seen: the listener stays."""
    lo = w.first_ok_ns if w.first_ok_ns is not None else w.start_ns
    end = w.end_ns if w.end_ns is not None else (w.last_attempt_ns or trace_end)
    hi = end + ACCEPT_LAG_NS
    ids = {id(x) for x in matching}
    times = [a[0] for a in accepts]
    count: dict[int, int] = defaultdict(int)
    for _ts, proc, lst in accepts[bisect_left(times, lo) : bisect_right(times, hi)]:
        if id(lst) in ids:
            count[proc] += 1
    if not count:
        return
    acceptor = max(count.items(), key=lambda kv: (kv[1], kv[0]))[0]
    if acceptor != w.target:
        w.listener = w.target
        w.target = acceptor


def _median_gap(t: np.ndarray[Any, Any]) -> int | None:
    return int(np.median(np.diff(t))) if len(t) >= 2 else None


def _udp(st: pa.Table) -> pa.ChunkedArray:
    """connect() on a UDP socket (a DNS lookup): inet, no TCP handshake, and "ok" (a UDP connect
    only sets the peer). A TCP connect that failed before its SYN also has tcp false, but its
    outcome is a failure: it stays."""
    inet = pc.is_in(st["family"], pa.array(["inet", "inet6"]))
    no_tcp = pc.equal(st["tcp"], False)
    ok = pc.equal(st["outcome"], "ok")
    return pc.fill_null(pc.and_kleene(pc.and_kleene(inet, no_tcp), ok), False)


def _connect_waits(
    trace: Trace,
    procs: Processes,
    profile: Profile,
    trace_end: int,
    sock_idx: Any,
    part: Any = None,
    answered: Answered | None = None,
) -> list[Wait]:
    st = trace.table("socket")
    if st.num_rows == 0:
        return []
    is_connect = pc.fill_null(pc.equal(st["kind"], "connect"), False)
    rows = pc.indices_nonzero(pc.and_(is_connect, pc.invert(_udp(st)))).to_numpy().astype(np.int64)
    if len(rows) == 0:
        return []
    # only the columns used below: a take of the whole table copies every string column
    ct = st.select(["ts_ns", "endpoint", "outcome", "family", "addr", "port", "tid"]).take(
        pa.array(rows)
    )
    ts = np.asarray(pc.fill_null(ct["ts_ns"], 0).to_numpy(zero_copy_only=False), np.int64)
    pidx = sock_idx[rows]
    ep_enc = pc.fill_null(ct["endpoint"], "").combine_chunks().dictionary_encode()
    ep_codes = np.asarray(ep_enc.indices.to_numpy(zero_copy_only=False), np.int64)
    ep_names = ep_enc.dictionary.to_pylist()
    oc_enc = pc.fill_null(ct["outcome"], "").combine_chunks().dictionary_encode()
    oc_codes = np.asarray(oc_enc.indices.to_numpy(zero_copy_only=False), np.int64)
    oc_names: list[str] = oc_enc.dictionary.to_pylist()
    failed_code = np.array([n in FAILED for n in oc_names] + [False], bool)
    ok_code = np.array([n == "ok" for n in oc_names] + [False], bool)

    # the groups: (endpoint, waiter process, and with stacks the part of the process that
    # connected: kubelet's readiness poll is not one series with the scheduler's watches)
    sub = np.zeros(len(rows), np.int64) if part is None else \
        _fill_unknown_parts(np.asarray(part, np.int64)[rows], ep_codes, pidx, ct["tid"], ts)
    order = np.lexsort((ts, sub, pidx, ep_codes))
    g_ep, g_proc, g_sub = ep_codes[order], pidx[order], sub[order]
    starts = np.flatnonzero(
        np.r_[True, (np.diff(g_ep) != 0) | (np.diff(g_proc) != 0) | (np.diff(g_sub) != 0)]
    )
    ends = np.r_[starts[1:], len(order)]
    n_failed = np.add.reduceat(failed_code[oc_codes[order]].astype(np.int64), starts)
    sizes = ends - starts
    interesting = np.flatnonzero((n_failed > 0) | (sizes >= polls.MIN_ATTEMPTS))

    listens = _listens(trace, procs, sock_idx)
    accepts: list[tuple[int, int, _Listen]] | None = None  # only read when a wait needs them
    firsts = order[starts[interesting]]
    heads = ct.select(["family", "addr", "port"]).take(pa.array(firsts)).to_pylist()
    logs = trace.table("log")
    out: list[Wait] = []
    for g, head in zip(interesting.tolist(), heads):
        sel = order[starts[g] : ends[g]]
        first = int(sel[0])
        endpoint = ep_names[int(ep_codes[first])]
        waiter = int(pidx[first])
        matching = _matching(
            listens, head["family"] or "", head["addr"] or "", head["port"], endpoint
        )
        answers = None
        if answered is not None and polls.MIN_ATTEMPTS <= len(sel) <= polls.MAX_CHAIN_GROUP:
            # when each attempt's answer ended the waiter's wait for it (scheduler data)
            tids = pc.fill_null(ct["tid"], 0).take(pa.array(sel)).to_pylist()
            tt = ts[sel].tolist()
            pid = procs.procs[waiter].pid
            answers = [
                answered(pid, int(tids[k]), tt[k], tt[k + 1] if k + 1 < len(tt) else trace_end)
                for k in range(len(tt))
            ]
        found = _group_waits(
            t=ts[sel],
            answers=answers,
            rows=rows[sel],
            failed=failed_code[oc_codes[sel]],
            ok=ok_code[oc_codes[sel]],
            outcome_names=[oc_names[c] or "unknown" for c in oc_codes[sel]],
            endpoint=endpoint,
            waiter=waiter,
            listens=matching,
            procs=procs,
            profile=profile,
            trace_end=trace_end,
            logs=logs,
        )
        if found and accepts is None:
            accepts = _accepts(trace, procs, sock_idx, listens)
        for w in found:
            _set_acceptor(w, accepts or [], matching, trace_end)
        out.extend(found)
    return out


def _fill_unknown_parts(sub: Any, ep: Any, proc: Any, tid_col: Any, ts: Any) -> Any:
    """Connects whose stack was not taken (part -1: the stack map's bucket held another
    stack, a failed walk) are not a group of their own: a poller that lost one attempt's
    stack would split its series in two. Such a connect takes the part of the connects of
    the same (endpoint, process) when they all have one, else that of the nearest connect in
    time of the same thread to the same endpoint; with neither it stays -1."""
    unknown = np.flatnonzero(sub < 0)
    if len(unknown) == 0:
        return sub
    out = sub.copy()
    tids = np.asarray(pc.fill_null(tid_col, 0).to_numpy(zero_copy_only=False), np.int64)
    for i in unknown.tolist():
        same = np.flatnonzero((ep == ep[i]) & (proc == proc[i]) & (sub >= 0))
        if len(same) == 0:
            continue
        parts = np.unique(sub[same])
        if len(parts) == 1:
            out[i] = parts[0]
            continue
        mine = same[tids[same] == tids[i]]
        if len(mine):
            out[i] = sub[mine[np.argmin(np.abs(ts[mine] - ts[i]))]]
    return out


def _group_waits(
    *,
    t: Any,
    answers: list[int | None] | None = None,
    rows: Any,
    failed: Any,
    ok: Any,
    outcome_names: list[str],
    endpoint: str,
    waiter: int,
    listens: list[_Listen],
    procs: Processes,
    profile: Profile,
    trace_end: int,
    logs: pa.Table,
) -> list[Wait]:
    """Listener episodes and poll series of one (waiter, endpoint) group."""
    n = len(t)
    episodes: list[tuple[int, int | None, _Listen | None]] = []  # (first fail, first ok, listen)
    pos = 0
    while pos < n:
        fails = np.flatnonzero(failed[pos:])
        if len(fails) == 0:
            break
        i = pos + int(fails[0])
        oks = np.flatnonzero(ok[i + 1 :])
        j = i + 1 + int(oks[0]) if len(oks) else None
        hi = int(t[j]) if j is not None else trace_end
        before = [x for x in listens if x.ts < t[i]]
        during = [x for x in listens if t[i] <= x.ts <= hi]
        if during:
            episodes.append((i, j, during[0]))
        elif not before:
            # nothing listened before the first failure and no listen is in the trace (another
            # host, a missed event): still a wait for a listener, with an unknown target
            episodes.append((i, j, None))
        if j is None:
            break
        pos = j + 1

    series = polls.find_series_answered(t, answers)
    out: list[Wait] = []
    used_series: set[int] = set()
    for i, j, lst in episodes:
        last = j if j is not None else n - 1
        idx = list(range(i, last + 1))
        merged = None
        for k, s in enumerate(series):
            if k in used_series:
                continue
            if s.indices[0] <= last and s.indices[-1] >= i:  # overlaps the episode
                # the episode's own retries are part of it; a cadence that goes on after the
                # first ok connect makes the whole thing one poll wait with a listener part
                used_series.add(k)
                if j is not None and s.indices[-1] > j:
                    merged = s
        if merged is not None:
            out.append(
                _poll_wait(
                    t,
                    rows,
                    outcome_names,
                    sorted(set(idx) | set(merged.indices)),
                    merged,
                    endpoint,
                    waiter,
                    listens,
                    procs,
                    profile,
                    trace_end,
                    logs,
                    listener=(i, j, lst),
                )
            )
            continue
        w = Wait(
            kind="listener",
            waiter=waiter,
            endpoint=endpoint,
            start_ns=int(t[i]),
            end_ns=int(t[j]) if j is not None else None,
            first_attempt_ns=int(t[i]),
            first_ok_ns=int(t[j]) if j is not None else None,
            attempts=len(idx),
            interval_ns=_median_gap(t[idx]),
            outcomes=_counts([outcome_names[x] for x in idx]),
            evidence={"socket": [int(rows[x]) for x in idx[:MAX_EVIDENCE]]},
        )
        if lst is not None:
            w.ready_ns, w.target = lst.ts, lst.proc
            if lst.row is not None:
                w.evidence["socket"].append(lst.row)
            if j is not None:
                w.lag_ns = int(t[j]) - lst.ts
            w.reason = "connects failed until the endpoint was listened on"
        else:
            w.reason = (
                "connects failed until the endpoint answered (its listen is not in the trace)"
            )
        if j is None:
            w.reason = "connects failed and never succeeded before the trace ended"
        out.append(w)
    for k, s in enumerate(series):
        if k in used_series:
            continue
        out.append(
            _poll_wait(
                t,
                rows,
                outcome_names,
                s.indices,
                s,
                endpoint,
                waiter,
                listens,
                procs,
                profile,
                trace_end,
                logs,
                listener=None,
            )
        )
    return out


def _counts(names: list[str]) -> dict[str, int]:
    c: dict[str, int] = {}
    for x in names:
        c[x] = c.get(x, 0) + 1
    return dict(sorted(c.items()))


def _poll_wait(
    t: Any,
    rows: Any,
    outcome_names: list[str],
    idx: list[int],
    s: polls.Series,
    endpoint: str,
    waiter: int,
    listens: list[_Listen],
    procs: Processes,
    profile: Profile,
    trace_end: int,
    logs: pa.Table,
    listener: tuple[int, int | None, _Listen | None] | None,
) -> Wait:
    first, last = int(t[idx[0]]), int(t[idx[-1]])
    proc = procs.procs[waiter]
    stopped = (proc.end_ns is not None and proc.end_ns >= last) or (
        trace_end - last >= 1.5 * s.interval_ns
    )
    w = Wait(
        kind="poll",
        waiter=waiter,
        endpoint=endpoint,
        start_ns=first,
        end_ns=last if stopped else None,
        first_attempt_ns=first,
        last_attempt_ns=last,
        ended_ns=last if stopped else None,
        attempts=len(idx),
        interval_ns=s.interval_ns,
        outcomes=_counts([outcome_names[x] for x in idx]),
        confidence=s.confidence,
        evidence={"socket": [int(rows[x]) for x in idx[:MAX_EVIDENCE]]},
    )
    w.reason = f"{len(idx)} connects every {s.interval_ns / 1e6:.0f} ms" + (
        "" if stopped else ", still polling when the trace ended"
    )
    before = [x for x in listens if x.ts <= last]
    if before:
        w.target = before[-1].proc
    if listener is not None:
        _first_fail, j, lst = listener
        w.first_ok_ns = int(t[j]) if j is not None else None
        if lst is not None:
            w.ready_ns, w.target = lst.ts, lst.proc
            if j is not None:
                w.lag_ns = int(t[j]) - lst.ts
        w.reason += "; refused until the endpoint was listened on, then polled until it was ready"
    else:
        during = [x for x in listens if first < x.ts <= last]
        if during:  # the endpoint appeared during the loop: that is when it became ready
            w.ready_ns, w.target = during[0].ts, during[0].proc
    rule = profile.poll_rule(endpoint)
    if rule and logs.num_rows:
        _log_evidence(w, rule, logs, first, last, s.interval_ns)
    if w.ready_ns is not None and w.ended_ns is not None and w.first_ok_ns is None:
        w.lag_ns = w.ended_ns - w.ready_ns
    return w


def _log_evidence(
    w: Wait, rule: dict[str, Any], logs: pa.Table, first: int, last: int, interval: int
) -> None:
    """Log lines that corroborate a poll loop (and a log-defined ready moment)."""
    ts = pc.fill_null(logs["ts_ns"], 0)
    window = pc.and_(pc.greater_equal(ts, first), pc.less_equal(ts, last + 2 * interval))
    msg = pc.fill_null(logs["message"], "")
    hits: list[int] = []
    for rx in rule.get("evidence_log") or []:
        m = pc.and_(window, pc.match_substring_regex(msg, rx))
        hits.extend(pc.indices_nonzero(m).to_pylist())
    if hits:
        w.evidence["log"] = sorted(set(hits))[:MAX_EVIDENCE]
    for cond in rule.get("ready") or []:
        rx = str(cond).partition(":")[2] if str(cond).startswith("log:") else None
        if rx is None:
            continue
        m = pc.and_(
            pc.and_(pc.greater_equal(ts, first), pc.less_equal(ts, last)),
            pc.match_substring_regex(msg, rx),
        )
        idx = pc.indices_nonzero(m).to_pylist()
        if idx:
            w.ready_ns = int(logs["ts_ns"][idx[0]].as_py())
            w.evidence.setdefault("log", []).append(idx[0])
            break


def _rank(bounds: Any, x: Any) -> Any:
    """A rank of each time that orders it against the sorted unique ``bounds`` exactly as the
    time itself: 2i+1 for bounds[i], 2i for a time between bounds[i-1] and bounds[i]. Ranking
    against the bounds only (the children's starts and ends) avoids sorting every event time."""
    i = np.searchsorted(bounds, x, "left")
    hit = bounds[np.minimum(i, len(bounds) - 1)] == x
    return 2 * i + hit


def _child_waits(trace: Trace, procs: Processes, profile: Profile, sock_idx: Any) -> list[Wait]:
    """A parent idle (nothing visible) while its child ran to exit was waiting for it."""
    act_proc: list[Any] = []
    act_ts: list[Any] = []
    st = trace.table("socket")
    if st.num_rows:
        act_proc.append(sock_idx)
        act_ts.append(
            np.asarray(pc.fill_null(st["ts_ns"], 0).to_numpy(zero_copy_only=False), np.int64)
        )
    fork_par = [
        (p.parent, p.start_ns)
        for p in procs.procs
        if p.parent is not None and p.start_ns is not None
    ]  # forking is activity
    execs = [(p.idx, int(e["ts_ns"])) for p in procs.procs for e in p.execs]
    for pairs in (fork_par, execs):
        if pairs:
            a = np.asarray(pairs, np.int64)
            act_proc.append(a[:, 0])
            act_ts.append(a[:, 1])
    kids = [
        c
        for c in procs.procs
        if c.parent is not None
        and c.start_ns is not None
        and c.end_ns is not None
        and (
            procs.procs[c.parent].end_ns is None or (procs.procs[c.parent].end_ns or 0) >= c.end_ns
        )
    ]
    if not kids:
        return []
    k_par = np.asarray([c.parent for c in kids], np.int64)
    k_start = np.asarray([c.start_ns for c in kids], np.int64)
    k_end = np.asarray([c.end_ns for c in kids], np.int64)
    if act_proc:
        ap, at = np.concatenate(act_proc), np.concatenate(act_ts)
        # one sorted int64 key (process, time rank) answers "any activity in (start, end)?"
        bounds = unique_sorted(np.concatenate([k_start, k_end]))
        keys = np.sort((ap << 32) | _rank(bounds, at))
        lo = np.searchsorted(keys, (k_par << 32) | _rank(bounds, k_start), "right")
        hi = np.searchsorted(keys, (k_par << 32) | _rank(bounds, k_end), "left")
        idle = hi <= lo
    else:
        idle = np.ones(len(kids), bool)
    out: list[Wait] = []
    for c, ok in zip(kids, idle.tolist()):
        if not ok:
            continue  # the parent did something else meanwhile
        out.append(
            Wait(
                kind="child",
                waiter=c.parent,
                target=c.idx,
                start_ns=c.start_ns or 0,
                end_ns=c.end_ns,
                reason=(
                    "ran a kernel-module helper"
                    if profile.is_module_helper(c.names)
                    else "ran a helper and waited for it to exit"
                ),
            )
        )
    return out


def _module_waits(trace: Trace, procs: Processes, profile: Profile) -> list[Wait]:
    mt = trace.table("module")
    if mt.num_rows == 0:
        return []
    pidx = procs.assign(mt["pid"], mt["ts_ns"])
    out = []
    for k, r in enumerate(mt.select(["ts_ns", "kind", "name", "ret"]).to_pylist()):
        if r["kind"] == "free":
            continue
        p = procs.procs[int(pidx[k])]
        asker = p.parent if (p.parent is not None and profile.is_module_helper(p.names)) else p.idx
        ts = int(r["ts_ns"] or 0)
        out.append(
            Wait(
                kind="module",
                waiter=asker,
                target=p.idx,
                endpoint=r["name"],
                start_ns=ts,
                end_ns=ts,
                reason=f"{r['kind']} {r['name'] or '?'}"
                + (f" (ret {r['ret']})" if r["ret"] not in (None, 0) else ""),
                evidence={"module": [k]},
            )
        )
    return out


def find(
    trace: Trace,
    procs: Processes,
    profile: Profile,
    trace_end: int,
    part: Any = None,
    answered: Answered | None = None,
) -> list[Wait]:
    """Every wait-for edge in the trace (see module docstring), sorted by start time.

    part: per socket row, which part of its process made the call (the component code of the
    connect's stack, analyzer/stacks.py); connects are grouped by it too, so two components of
    ONE process polling each other are a wait like any other. None (no stacks): by process.
    answered (scheduler data): when an attempt's answer reached the waiter (polls.py)."""
    st = trace.table("socket")
    # every socket event's process instance, computed once for all passes
    sock_idx = procs.assign(st["pid"], st["ts_ns"]) if st.num_rows else np.zeros(0, np.int64)
    waits = _connect_waits(trace, procs, profile, trace_end, sock_idx, part, answered)
    waits += _child_waits(trace, procs, profile, sock_idx)
    waits += _module_waits(trace, procs, profile)
    waits.sort(key=lambda w: (w.start_ns, w.kind))
    return waits
