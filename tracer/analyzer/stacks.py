"""Stacks into k3s components (issue 23 part 4): which part of one Go process was on the CPU,
connected, listened, spawned or synced.

Contract: ``StackIndex.build(trace, procs, profile) -> StackIndex | None`` (None when the trace
has no stack tables: every caller then behaves exactly as before stacks existed). Pure over the
trace's ``samples``, ``stacks``, ``mappings``, ``binaries`` and ``symbols`` tables (schema 1.3);
names come from :class:`tracer.symbols.StackNamer` (the trace's symbol extract, else the binary
while it is still the same file) and components from the profile's ``stack_components``
(:mod:`tracer.symbols.components`).

* every stack of a process is named once per (process, mapping snapshot, stack id) and given
  its component: the first frame from the top that the component map names, else the
  process's own component (its executable's, from the profile, else its comm);
* ``cpu_components(pid, lo, hi)``: on-CPU samples of a process in [lo, hi) by component;
* ``event_component(kind, pid, tid, ts)``: the component of the stack taken at an event
  (connect, listen, accept, fork, fsync...): the samples row of the same kind, tid and time;
* ``problems``: one plain line per thing that makes names or components partial (no
  .gopclntab, no symbol extract, one-frame stacks, failed walks), never an exception.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tracer.analyzer.model import (
    BlockersJson,
    ComponentLaneJson,
    ComponentLanesJson,
    ComponentSamplesJson,
    SegmentFlameJson,
    StacksJson,
)
from tracer.analyzer.profiles import Profile
from tracer.analyzer.tree import Processes
from tracer.schema import Trace
from tracer.symbols import StackNamer
from tracer.symbols import components as stack_rules

I64 = npt.NDArray[np.int64]

#: the component of CPU time whose segment had no sample in it (components then still sum to
#: the segment's on-CPU ns)
UNSAMPLED = "(unsampled)"
#: the component of a sample without a usable user stack (kernel thread, failed walk)
NO_STACK = "(no stack)"
#: the outermost frame of a stack the walk could not follow past its first frame(s)
TRUNCATED = "(truncated)"
#: the one frame of a stack taken before its process's exec (StackIndex.build)
PRE_EXEC = "(before exec)"
PRE_EXEC_GEN = -2
#: a process is said to have one-frame stacks when at least this share of its stacks are
ONE_FRAME_SHARE = 0.05
#: the flame graph keeps at most this many distinct stacks (the rest are counted)
FOLDED_TOP = 3000
#: component lanes: at most this many processes and buckets
LANE_PROCESSES = 12
LANE_BUCKETS = 400
DEFAULT_HZ = 49
_ERRNO = {-14: "EFAULT: the frame-pointer walk failed", -17: "EEXIST: the stack map was full "
          "(a hash collision lost the stack)", -12: "ENOMEM", -2: "ENOENT"}


@dataclass
class StackIndex:
    """The trace's samples, each with its named stack and component (see module docstring)."""

    ts: I64
    pid: I64
    tid: I64
    kind: list[str]
    #: per sample: index into `stacks_named` (-1: no usable stack)
    named: I64
    #: per sample: index into `components`
    comp: I64
    #: distinct named stacks: (pid, function names outermost first)
    stacks_named: list[tuple[int, tuple[str, ...]]]
    components: list[str]
    sample_hz: int
    problems: list[str] = field(default_factory=list)
    #: (kind, tid, ts) -> sample row, for the event stacks
    _events: dict[tuple[str, int, int], int] = field(default_factory=dict)
    #: (kind, ts) -> sample rows, for fork stacks matched by time (the creator's tid)
    _by_time: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    #: pid -> its cpu samples' rows sorted by time
    _cpu: dict[int, I64] = field(default_factory=dict)
    #: per named stack: a component rule decided it (False: the process's own, by default)
    ruled: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def period_ns(self) -> int:
        return 1_000_000_000 // max(self.sample_hz, 1)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, trace: Trace, procs: Processes, profile: Profile) -> StackIndex | None:
        sm = trace.table("samples")
        if "samples" not in trace.tables and "stacks" not in trace.tables:
            return None
        meta_stacks = trace.meta.get("stacks")
        hz = DEFAULT_HZ
        if isinstance(meta_stacks, Mapping) and isinstance(meta_stacks.get("sample_hz"), int):
            hz = int(meta_stacks["sample_hz"]) or DEFAULT_HZ
        n = sm.num_rows
        ts = _i64(sm["ts_ns"])
        pid = _i64(sm["pid"])
        tid = _i64(sm["tid"])
        kind = [k or "" for k in sm["kind"].to_pylist()]
        sid = np.asarray(pc.fill_null(sm["stack_id"], -1).to_numpy(zero_copy_only=False),
                         np.int64)

        frames_of: dict[int, list[int]] = {}
        st = trace.table("stacks")
        for s, f in zip(st["stack_id"].to_pylist(), st["frames"].to_pylist()):
            if s is not None:
                frames_of[int(s)] = [int(x) for x in (f or []) if x is not None]
        namer = StackNamer({k: trace.tables.get(k) for k in
                            ("stacks", "mappings", "binaries", "symbols")})
        rules = stack_rules.from_profile(profile.data, f"profile {profile.name}")

        # one naming per (pid, mapping generation, stack id): the generation is the latest
        # /proc/PID/maps read at or before the stack (the first one for earlier stacks)
        gens = _generations(trace.table("mappings"))
        execs = _exec_times(trace.table("process"))
        snap = np.full(n, -1, np.int64)
        pre_exec = 0
        for p in np.unique(pid).tolist():
            at = gens.get(int(p))
            if at is not None:
                rows = np.flatnonzero(pid == p)
                snap[rows] = np.maximum(np.searchsorted(at, ts[rows], "right") - 1, 0)
                # taken before an exec that came before the first read of its mappings: the
                # pid ran its parent's program then (fork, then exec), whose mappings are not
                # the ones read: named PRE_EXEC, never against the new program's mappings
                ex = execs.get(int(p))
                if ex is not None:
                    early = rows[ts[rows] < at[0]]
                    nxt = np.searchsorted(ex, ts[early], "right")
                    hit = nxt < len(ex)
                    hit[hit] = ex[nxt[hit]] <= at[0]
                    snap[early[hit]] = PRE_EXEC_GEN
                    pre_exec += int(np.count_nonzero(hit & (sid[early] >= 0)))
        unnamed: Counter[tuple[str, str]] = Counter()
        nframes = 0
        named = np.full(n, -1, np.int64)
        stacks_named: list[tuple[int, tuple[str, ...]]] = []
        depth: list[int] = []
        missing_ids = 0
        ok = np.flatnonzero(sid >= 0)
        if len(ok):
            up, ip = _factorize(pid[ok])
            us, is_ = _factorize(snap[ok] + 1)
            ui, ii = _factorize(sid[ok])
            uk, inverse = _factorize((ip * len(us) + is_) * len(ui) + ii)
            kp, rest = np.divmod(uk, len(us) * len(ui))
            ks, kk = np.divmod(rest, len(ui))
            keys = zip(up[kp].tolist(), (us[ks] - 1).tolist(), ui[kk].tolist())
            slot = np.full(len(uk), -1, np.int64)
            for i, (p, sn, s) in enumerate(keys):
                pcs = frames_of.get(s)
                if pcs is None:
                    continue
                slot[i] = len(stacks_named)
                if sn == PRE_EXEC_GEN:
                    stacks_named.append((p, (PRE_EXEC,)))
                    depth.append(len(pcs))
                    continue
                at_ts = int(gens[p][sn]) if sn >= 0 else None
                frames = namer.frames(p, s, at_ts)
                # a caller outside every mapping is not code: the frame-pointer walk left the
                # stack (the leaf used the frame-pointer register for data, as Go's
                # crypto/sha256 assembly does on amd64, or keeps no frame pointer): keep the
                # frames before it and mark the stack truncated
                cut = next((i for i, f in enumerate(frames) if i and not f.resolved
                            and f.reason == "no mapping for PC"), None)
                kept = frames if cut is None else frames[:cut]
                nframes += len(kept)
                for f in kept:
                    if not f.resolved:
                        unnamed[(f.function.rsplit("+", 1)[0], f.reason or "no name")] += 1
                names = tuple(f.function for f in reversed(kept))
                pcs_kept = len({f.address for f in kept}) if cut is not None else len(pcs)
                if cut is not None or pcs_kept <= 1:
                    names = (TRUNCATED, *names)
                stacks_named.append((p, names))
                depth.append(pcs_kept)
            named[ok] = slot[inverse]
            missing_ids = int(np.count_nonzero(named[ok] < 0))

        # components: one per named stack
        own_of: dict[int, str | None] = {}
        exe_of: dict[int, list[str]] = {}
        comps: list[str] = [NO_STACK]
        comp_ix: dict[str, int] = {NO_STACK: 0}
        stack_comp = np.zeros(len(stacks_named), np.int64)
        ruled = np.zeros(len(stacks_named), bool)
        for i, (p, fr) in enumerate(stacks_named):
            if p not in own_of:
                own_of[p] = _own_component(procs, profile, p)
                exe_of[p] = _names(procs, p)
            if fr == (PRE_EXEC,):  # its parent's program: the parent's own component
                par = _parent_pid(procs, p)
                c = (_own_component(procs, profile, par) if par is not None else None) \
                    or own_of[p] or f"pid {p}"
                got = None
            else:
                got = rules.component_of([f for f in reversed(fr) if f != TRUNCATED],
                                         exe_of[p])
                c = got.component if got is not None else (own_of[p] or f"pid {p}")
            ruled[i] = got is not None
            if c not in comp_ix:
                comp_ix[c] = len(comps)
                comps.append(c)
            stack_comp[i] = comp_ix[c]
        comp = np.where(named >= 0, stack_comp[np.maximum(named, 0)] if len(stack_comp)
                        else 0, 0)

        ix = cls(ts, pid, tid, kind, named, comp.astype(np.int64), stacks_named, comps, hz)
        ix.ruled = ruled
        is_cpu = np.array([k == "cpu" for k in kind], bool) if n else np.zeros(0, bool)
        for r in np.flatnonzero(~is_cpu).tolist():
            ix._events[(kind[r], int(tid[r]), int(ts[r]))] = r
            ix._by_time.setdefault((kind[r], int(ts[r])), []).append(r)
        for p in np.unique(pid[is_cpu]).tolist():
            rows = np.flatnonzero(is_cpu & (pid == p))
            ix._cpu[int(p)] = rows[np.argsort(ts[rows], kind="stable")]

        ix.problems = _problems(trace, procs, gens, sm, sid, pid, named[is_cpu],
                                stacks_named, depth, missing_ids, unnamed, nframes)
        if pre_exec:
            ix.problems.append(
                f"{pre_exec} samples were taken before their process's exec (it still ran "
                "an earlier program, its parent's after a fork, whose mappings were not read): "
                f"shown as {PRE_EXEC}, charged to the parent's own component")
        namer.close()
        return ix

    # -- queries ----------------------------------------------------------------------------

    def cpu_rows(self, pid: int, lo: int, hi: int) -> I64:
        rows = self._cpu.get(pid)
        if rows is None or len(rows) == 0:
            return np.zeros(0, np.int64)
        t = self.ts[rows]
        a, b = np.searchsorted(t, lo, "left"), np.searchsorted(t, hi, "left")
        return rows[a:b]

    def cpu_components(self, pid: int, lo: int, hi: int) -> dict[str, int]:
        """On-CPU samples of pid in [lo, hi) by component."""
        rows = self.cpu_rows(pid, lo, hi)
        if len(rows) == 0:
            return {}
        counts = np.bincount(self.comp[rows], minlength=len(self.components))
        return {self.components[i]: int(c) for i, c in enumerate(counts.tolist()) if c}

    def hottest(self, pid: int, lo: int, hi: int) -> dict[str, str]:
        """Per component with samples of pid in [lo, hi): its most frequent innermost frame
        (where that component's CPU went: "crypto/sha256.block", a kube-openapi function)."""
        rows = self.cpu_rows(pid, lo, hi)
        by: dict[str, Counter[str]] = defaultdict(Counter)
        for r in rows[self.named[rows] >= 0].tolist():
            fr = self.stacks_named[int(self.named[r])][1]
            if fr:
                by[self.components[int(self.comp[r])]][fr[-1]] += 1
        return {c: min(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[0]
                for c, cnt in sorted(by.items())}

    def event_row(self, kind: str, tid: int | None, ts: int, pids: Iterable[int] = ()) -> int:
        """The samples row of an event's stack (-1: none). Exact (kind, tid, ts); else, for
        events whose row names another task (a fork row is the child's, its stack the
        creator's), the one row of that kind at that instant of one of `pids`."""
        if tid is not None:
            r = self._events.get((kind, int(tid), int(ts)))
            if r is not None:
                return r
        want = set(pids)
        for r in self._by_time.get((kind, int(ts)), []):
            if int(self.pid[r]) in want:
                return r
        return -1

    def component_at(self, row: int) -> str | None:
        """The component of a sample's stack (None: no row, or no usable stack)."""
        if row < 0 or self.named[row] < 0:
            return None
        return self.components[int(self.comp[row])]

    def majority(self, rows: Iterable[int]) -> str | None:
        """The most frequent component among stacks (ties: the first seen)."""
        c: Counter[str] = Counter()
        for r in rows:
            name = self.component_at(r)
            if name is not None:
                c[name] += 1
        return c.most_common(1)[0][0] if c else None

    def folded(
        self, lo: int | None = None, hi: int | None = None, *, pids: set[int] | None = None,
        component: str | None = None, comm: Mapping[int, str] | None = None,
    ) -> list[tuple[str, int]]:
        """On-CPU samples as folded stacks (`proc;outermost;...;innermost`, count), most
        frequent first: the format flamegraph.pl, speedscope and inferno read."""
        counts: Counter[int] = Counter()
        no_stack: Counter[int] = Counter()
        for p, rows in self._cpu.items():
            if pids is not None and p not in pids:
                continue
            t = self.ts[rows]
            a = 0 if lo is None else int(np.searchsorted(t, lo, "left"))
            b = len(rows) if hi is None else int(np.searchsorted(t, hi, "left"))
            sel = rows[a:b]
            if component is not None:
                sel = sel[self.comp[sel] == self.components.index(component)] \
                    if component in self.components else sel[:0]
            for k, n in zip(*np.unique(self.named[sel], return_counts=True)):
                if k >= 0:
                    counts[int(k)] += int(n)
                else:
                    no_stack[p] += int(n)
        out: Counter[str] = Counter()
        names = comm or {}
        for k, n in counts.items():
            p, fr = self.stacks_named[k]
            out[";".join((_proc_frame(p, names), *(f.replace(";", ":") for f in fr)))] += n
        for p, n in no_stack.items():
            out[f"{_proc_frame(p, names)};{NO_STACK}"] += n
        return sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))


    def perf_script(
        self, lo: int | None = None, hi: int | None = None, *, pids: set[int] | None = None,
        component: str | None = None, comm: Mapping[int, str] | None = None,
    ) -> list[str]:
        """On-CPU samples in `perf script`'s text format (one block per sample: `comm pid/tid
        [cpu] secs: 1 cpu-clock:`, then its frames innermost first, then a blank line), which
        Perfetto imports as a callstack profile (and FlameGraph's stackcollapse-perf reads).
        Times are the trace's CLOCK_MONOTONIC seconds, as in every other k3sprof output."""
        names = comm or {}
        want = None if component is None else (
            self.components.index(component) if component in self.components else -2)
        out: list[str] = []
        rows = [r for p, rs in self._cpu.items() if pids is None or p in pids for r in rs]
        rows.sort(key=lambda r: (int(self.ts[r]), r))
        for r in rows:
            t = int(self.ts[r])
            if (lo is not None and t < lo) or (hi is not None and t >= hi):
                continue
            if want is not None and int(self.comp[r]) != want:
                continue
            p = int(self.pid[r])
            c = (names.get(p) or "?").replace(" ", "_")
            k = int(self.named[r])
            frames = self.stacks_named[k][1] if k >= 0 else (NO_STACK,)
            out.append(f"{c} {p}/{int(self.tid[r])} {t // 1_000_000_000}."
                       f"{(t % 1_000_000_000) // 1000:06d}: 1 cpu-clock:")
            out.extend(f"\t0 {f.replace(' ', '_')} ({c})" for f in reversed(frames))
            out.append("")
        return out


def _proc_frame(pid: int, comm: Mapping[int, str]) -> str:
    return f"{comm.get(pid) or '?'}[{pid}]".replace(";", ":").replace(" ", "_")


def _i64(col: pa.ChunkedArray) -> I64:
    return np.asarray(pc.fill_null(col, 0).to_numpy(zero_copy_only=False), np.int64)


def _factorize(a: I64) -> tuple[I64, I64]:
    """(sorted unique values, index of each element's value) by one sort (numpy 2's
    np.unique hashes: several times slower on a million int64s, tree.unique_sorted says)."""
    if len(a) == 0:
        return a, np.zeros(0, np.int64)
    order = np.argsort(a, kind="stable")
    s = a[order]
    new = np.r_[True, s[1:] != s[:-1]]
    inv = np.empty(len(a), np.int64)
    inv[order] = np.cumsum(new) - 1
    return s[new], inv


def _generations(mappings: pa.Table) -> dict[int, I64]:
    """pid -> the sorted times its /proc/PID/maps were read (each read is one generation)."""
    out: dict[int, set[int]] = defaultdict(set)
    for p, t in zip(mappings["pid"].to_pylist(), mappings["ts_ns"].to_pylist()):
        if p is not None:
            out[int(p)].add(int(t or 0))
    return {p: np.asarray(sorted(ts), np.int64) for p, ts in out.items()}


def _exec_times(process: pa.Table) -> dict[int, I64]:
    """pid -> the sorted times it exec'd (the process table's exec rows)."""
    if process.num_rows == 0 or "kind" not in process.column_names:
        return {}
    ex = process.filter(pc.fill_null(pc.equal(process["kind"], "exec"), False))
    out: dict[int, list[int]] = defaultdict(list)
    for p, t in zip(ex["pid"].to_pylist(), ex["ts_ns"].to_pylist()):
        if p is not None and t is not None:
            out[int(p)].append(int(t))
    return {p: np.asarray(sorted(v), np.int64) for p, v in out.items()}


def _parent_pid(procs: Processes, pid: int) -> int | None:
    """The pid of the process that forked pid (its first instance's parent)."""
    for p in procs.procs:
        if p.pid == pid and p.parent is not None:
            return procs.procs[p.parent].pid
    return None


def _names(procs: Processes, pid: int) -> list[str]:
    """Every name the instances of pid went by (the exe scoping of component rules)."""
    out: list[str] = []
    for p in procs.procs:
        if p.pid == pid:
            out.extend(p.names)
    return list(dict.fromkeys(out))


def _own_component(procs: Processes, profile: Profile, pid: int) -> str | None:
    """The component of a process's own code: its executable's (profile), else its comm."""
    inst = [p for p in procs.procs if p.pid == pid]
    for p in reversed(inst):
        c = profile.component_for(p.names)
        if c:
            return c
    for p in reversed(inst):
        if p.comm:
            return p.comm
    return None


def _problems(
    trace: Trace, procs: Processes, gens: Mapping[int, I64], sm: pa.Table, sid: I64,
    pid: I64, cpu_named: I64, stacks_named: Sequence[tuple[int, tuple[str, ...]]],
    depth: Sequence[int], missing_ids: int, unnamed: Mapping[tuple[str, str], int],
    nframes: int,
) -> list[str]:
    """One line per reason names or components are partial (the analysis prints them);
    cpu_named: the on-CPU samples' named-stack indices; unnamed: (binary, reason) -> frames
    the namer could not name."""
    out: list[str] = []
    comm = {p.pid: p.comm for p in procs.procs if p.comm}
    for r in trace.table("binaries").to_pylist():
        path = r.get("path") or "?"
        if r.get("problem"):
            out.append(f"binary {path}: {r['problem']}")
        if (r.get("arch") or "") in ("arm", "i386", "x86"):
            out.append(f"binary {path}: {r['arch']} (32-bit): no frame pointers, its stacks "
                       "are one frame deep and their component is the process's own")
    for (binary, why), n in sorted(unnamed.items(), key=lambda kv: (-kv[1], kv[0])):
        out.append(f"{binary}: {n} of {nframes} frames (of the distinct stacks) unnamed ({why}): "
                   f"shown as "
                   f"{binary}+0xOFFSET, charged to the process's own component")
    no_maps = sorted({int(p) for p in pid[sid >= 0].tolist()} - set(gens))
    for p in no_maps[:10]:
        out.append(f"{comm.get(p) or '?'}[{p}]: no mappings recorded: its frames are raw "
                   "addresses and its component is the process's own")
    if missing_ids:
        out.append(f"{missing_ids} samples name a stack id missing from the stacks table "
                   "(counted as no stack)")
    if sm.num_rows:
        failed = sm.filter(pc.and_(pc.is_null(sm["stack_id"]), pc.is_valid(sm["stack_error"])))
        errs = failed["stack_error"].value_counts().to_pylist() if failed.num_rows else []
        for r in sorted(errs, key=lambda r: int(r["values"])):
            e = int(r["values"])
            out.append(f"{int(r['counts'])} of {sm.num_rows} stacks could not be taken: "
                       f"{e} {_ERRNO.get(e, 'error')}")
    one: dict[int, list[int]] = {}
    k = cpu_named[cpu_named >= 0]
    if len(k):
        spid = np.asarray([p for p, _ in stacks_named], np.int64)
        shallow = np.asarray(depth, np.int64) <= 1
        for p in np.unique(spid[k]).tolist():
            mine = k[spid[k] == p]
            one[p] = [int(np.count_nonzero(shallow[mine])), len(mine)]
    for p, (n1, nall) in sorted(one.items()):
        if n1 and n1 >= ONE_FRAME_SHARE * nall:
            out.append(f"{comm.get(p) or '?'}[{p}]: {n1} of {nall} on-CPU stacks stop after "
                       "their first frame (no frame pointer to follow: 32-bit ARM, C inside cgo "
                       "such as sqlite, or assembly that uses the frame-pointer register, like "
                       "Go's crypto/sha256 on amd64): they are `(truncated)` in the folded "
                       "stacks, and charged to their leaf's component, else the process's own")
    return out


# -- the analysis' keys -----------------------------------------------------------------------


def scaled(counts: Mapping[str, int], total_ns: int) -> dict[str, int]:
    """Sample counts -> ns summing EXACTLY to total_ns (largest remainders get the rest)."""
    n = sum(counts.values())
    if total_ns <= 0:
        return {}
    if n == 0:
        return {UNSAMPLED: total_ns}
    raw = {k: total_ns * v / n for k, v in counts.items()}
    out = {k: int(x) for k, x in raw.items()}
    rest = total_ns - sum(out.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), k))[:rest]:
        out[k] += 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


#: per-segment flame graphs: at most this many segments (the longest with samples), each at
#: most SEGMENT_FOLDED_TOP distinct stacks
SEGMENT_FLAMES = 30
SEGMENT_FOLDED_TOP = 300


def segment_flames(ix: StackIndex, comm: Mapping[int, str], path: Sequence[Any],
                   parts: Sequence[SegmentComponents | None], procs: Processes,
                   ) -> list[SegmentFlameJson]:
    """Folded stacks of each critical-path segment's process inside the segment (the process
    of its `components`), for the SEGMENT_FLAMES longest segments that have samples."""
    cands = []
    for i, (s, sc) in enumerate(zip(path, parts)):
        if sc is None:
            continue
        pid = procs.procs[sc.of].pid
        if len(ix.cpu_rows(pid, s.start_ns, s.end_ns)):
            cands.append((s.end_ns - s.start_ns, i, pid, s))
    cands.sort(key=lambda c: (-c[0], c[1]))
    out: list[SegmentFlameJson] = []
    for _, i, pid, s in sorted(cands[:SEGMENT_FLAMES], key=lambda c: c[1]):
        f = ix.folded(s.start_ns, s.end_ns, pids={pid}, comm=comm)
        out.append({"segment": i, "pid": pid,
                    "folded": [[k, n] for k, n in f[:SEGMENT_FOLDED_TOP]],
                    "folded_left_out": sum(n for _, n in f[SEGMENT_FOLDED_TOP:])})
    return out


def section(ix: StackIndex, comm: Mapping[int, str], lo: int, hi: int,
            lanes_of: Sequence[tuple[int, str | None, str | None, int, int]],
            segments: list[SegmentFlameJson] | None = None) -> StacksJson:
    """The `stacks` section: samples and components over the window, the folded stacks the
    flame graph draws (of the window, and of the longest critical-path segments), a component
    lane per process, and the problems."""
    cpu_rows = [ix.cpu_rows(p, lo, hi) for p in ix._cpu]
    allrows = np.concatenate(cpu_rows) if cpu_rows else np.zeros(0, np.int64)
    counts = np.bincount(ix.comp[allrows], minlength=len(ix.components)) if len(allrows) \
        else np.zeros(len(ix.components), np.int64)
    total = int(counts.sum())
    ranked = sorted(((int(c), ix.components[i]) for i, c in enumerate(counts.tolist()) if c),
                    key=lambda x: (-x[0], x[1]))
    by_comp: list[ComponentSamplesJson] = [
        {"component": name, "samples": c, "pct": round(100.0 * c / total, 2)} for c, name in ranked
    ]
    folded = ix.folded(lo, hi, comm=comm)
    events = Counter(k for k in ix.kind if k != "cpu")
    return {
        "start_ns": lo,
        "end_ns": hi,
        "sample_hz": ix.sample_hz,
        "cpu_samples": total,
        "event_stacks": dict(sorted(events.items())),
        "by_component": by_comp,
        "folded": [[s, n] for s, n in folded[:FOLDED_TOP]],
        "folded_left_out": sum(n for _, n in folded[FOLDED_TOP:]),
        "segments": segments or [],
        "lanes": lanes(ix, lanes_of, lo, hi),
        "problems": list(ix.problems),
    }


def lanes(ix: StackIndex, procs: Sequence[tuple[int, str | None, str | None, int, int]],
          lo: int, hi: int) -> ComponentLanesJson | None:
    """Per process (pid, comm, key, alive from, alive to) with on-CPU samples in the window:
    its dominant component per bucket as runs {start_ns, end_ns, component, samples}."""
    if hi <= lo:
        return None
    bucket = max(ix.period_ns, -(-(hi - lo) // LANE_BUCKETS))
    ranked = []
    for p, c, key, a, b in procs:
        rows = ix.cpu_rows(p, max(lo, a), min(hi, b))
        if len(rows):
            ranked.append((len(rows), p, c, key, rows))
    ranked.sort(key=lambda x: (-x[0], x[1]))
    out: list[ComponentLaneJson] = []
    for _n, p, c, key, rows in ranked[:LANE_PROCESSES]:
        b_of = (ix.ts[rows] - lo) // bucket
        runs: dict[str, list[Any]] = {"start_ns": [], "end_ns": [], "component": [],
                                      "samples": []}
        for bk in np.unique(b_of).tolist():
            sel = rows[b_of == bk]
            cnt = np.bincount(ix.comp[sel], minlength=len(ix.components))
            top = ix.components[int(np.argmax(cnt))]
            a = lo + bk * bucket
            if runs["component"] and runs["component"][-1] == top and runs["end_ns"][-1] == a:
                runs["end_ns"][-1] = min(hi, a + bucket)
                runs["samples"][-1] += len(sel)
            else:
                runs["start_ns"].append(int(a))
                runs["end_ns"].append(int(min(hi, a + bucket)))
                runs["component"].append(top)
                runs["samples"].append(len(sel))
        out.append({"pid": p, "comm": c, "key": key, "samples": runs["samples"],
                    "start_ns": runs["start_ns"], "end_ns": runs["end_ns"],
                    "component": runs["component"]})
    return {"bucket_ns": int(bucket), "lanes": out,
            "left_out": max(0, len(ranked) - LANE_PROCESSES)}


__all__ = ["NO_STACK", "UNSAMPLED", "StackIndex", "scaled", "section"]


# -- per segment, per wait, per process, per fsync ----------------------------------------------


@dataclass
class SegmentComponents:
    """A critical-path segment's on-CPU ns by component, of one process."""

    of: int  # process instance
    components: dict[str, int]
    #: "sched": scaled to the segment's states["cpu"]; "samples": samples x the sampling period
    source: str
    #: per component: its most frequent innermost frame in the segment
    hot: dict[str, str] = field(default_factory=dict)


#: segment kinds whose process is the segment's own / the wait's target (schedpath's rule)
_PROC_KINDS = ("run", "wait:wakeup", "wait:child", "wait:module")
_TARGET_KINDS = ("wait:poll", "wait:listener", "wait:poll-lag")


def path_components(ix: StackIndex, procs: Processes, path: Sequence[Any],
                    waits: Sequence[Any], states: Sequence[Any]) -> list[SegmentComponents | None]:
    """Per segment: with states (sched data), the on-CPU ns of `states_of` by component, from
    its samples in the segment, scaled to sum exactly to states["cpu"]; without, where the
    segment's process (the same rule) has samples in it, samples x period by component."""
    out: list[SegmentComponents | None] = []
    for s, st in zip(path, states):
        if st is not None:
            of = int(st.of)
            pid = procs.procs[of].pid
            counts = ix.cpu_components(pid, s.start_ns, s.end_ns)
            out.append(SegmentComponents(of, scaled(counts, int(st.states["cpu"])), "sched",
                                         ix.hottest(pid, s.start_ns, s.end_ns)))
            continue
        idx: int | None = None
        if s.kind in _PROC_KINDS:
            idx = s.proc
        elif s.kind in _TARGET_KINDS and s.wait is not None:
            idx = waits[s.wait].target
        if idx is None or idx < 0:
            out.append(None)
            continue
        counts = ix.cpu_components(procs.procs[idx].pid, s.start_ns, s.end_ns)
        if not counts:
            out.append(None)
            continue
        ns = {k: v * ix.period_ns for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
        out.append(SegmentComponents(idx, ns, "samples",
                                     ix.hottest(procs.procs[idx].pid, s.start_ns, s.end_ns)))
    return out


def wait_components(ix: StackIndex, socket: pa.Table, procs: Processes,
                    waits: Sequence[Any]) -> list[tuple[str | None, str | None]]:
    """Per wait: (waiter component, target component). Listener / poll waits: the stacks at
    the waiter's connects (its evidence rows; the most frequent component) and at the target's
    listen on the endpoint (else its accepts there during the wait). Child and module waits:
    the stack at the fork that created the helper, and the helper's own component."""
    cols = socket.select(["kind", "pid", "tid", "ts_ns", "port", "endpoint"]).to_pydict() \
        if socket.num_rows else {k: [] for k in ("kind", "pid", "tid", "ts_ns", "port",
                                                  "endpoint")}
    listens: dict[int, list[int]] = defaultdict(list)  # pid -> listen/accept rows
    for r, (k, p) in enumerate(zip(cols["kind"], cols["pid"])):
        if k in ("listen", "accept") and p is not None:
            listens[int(p)].append(r)

    def row_of(r: int) -> int:
        ts = cols["ts_ns"][r]
        if ts is None:
            return -1
        p = cols["pid"][r]
        return ix.event_row(cols["kind"][r], cols["tid"][r], int(ts), (p,) if p else ())

    out: list[tuple[str | None, str | None]] = []
    for w in waits:
        if w.kind in ("child", "module"):
            helper = procs.procs[w.target] if w.target is not None and w.target >= 0 else None
            waiter = spawned_by(ix, procs, helper) if helper is not None else None
            target = None
            if helper is not None and helper.pid in ix._cpu:
                c = ix.cpu_components(helper.pid, w.start_ns, w.end_ns or w.start_ns)
                target = max(c, key=lambda k: c[k]) if c else None
            out.append((waiter, target))
            continue
        rows = [r for r in w.evidence.get("socket", []) if r < len(cols["kind"])
                and cols["kind"][r] == "connect"]
        at = [row_of(r) for r in rows]
        waiter = ix.majority(at)
        _note_dialer(ix, at, w.endpoint, procs.procs[w.waiter] if w.waiter is not None
                     and w.waiter >= 0 else None, waiter)
        target = None
        if w.target is not None and w.target >= 0 and w.endpoint:
            tp = procs.procs[w.target].pid
            port = _port(w.endpoint)
            cands = [r for r in listens.get(tp, [])
                     if _same_endpoint(cols["kind"][r], cols["port"][r], cols["endpoint"][r],
                                       w.endpoint, port)]
            ready = w.ready_ns if w.ready_ns is not None else (w.end_ns or 2**63 - 1)
            ls = [r for r in cands if cols["kind"][r] == "listen"
                  and (cols["ts_ns"][r] or 0) <= ready]
            if ls:
                target = ix.component_at(row_of(ls[-1]))
            if target is None:
                hi = w.end_ns if w.end_ns is not None else 2**63 - 1
                target = ix.majority(row_of(r) for r in cands if cols["kind"][r] == "accept"
                                     and w.start_ns <= (cols["ts_ns"][r] or 0) <= hi)
        out.append((waiter, target))
    return out


#: frames of a goroutine Go's net/http starts to dial for a request: the component that made
#: the request is not on its stack
_DIALER_FRAMES = ("net/http.(*Transport).dialConnFor", "net/http.(*Transport).dialConn")


def _note_dialer(ix: StackIndex, rows: Sequence[int], endpoint: str | None, waiter: Any,
                 component: str | None) -> None:
    """Say plainly when a wait's connects were all made on net/http's dialer goroutine and no
    rule named them: the waiter component is then the process's own, not who asked."""
    named = [int(ix.named[r]) for r in rows if r >= 0 and ix.named[r] >= 0]
    if not named or any(bool(ix.ruled[k]) for k in named):
        return
    if not any(f in _DIALER_FRAMES for k in named for f in ix.stacks_named[k][1]):
        return
    who = f"{waiter.comm or '?'}[{waiter.pid}]" if waiter is not None else "?"
    line = (f"{who}: its connects to {endpoint or '?'} were made on net/http's dialer goroutine "
            "(Go dials for a request on a goroutine of its own): no frame names the component "
            f"that asked, so waiter_component is the process's own ({component or '?'})")
    if line not in ix.problems:
        ix.problems.append(line)


def _port(endpoint: str) -> int | None:
    if endpoint.startswith("unix:"):
        return None
    tail = endpoint.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _same_endpoint(kind: str, port: int | None, ep: str | None, want: str,
                   want_port: int | None) -> bool:
    if want_port is None:
        return ep == want
    if kind == "accept" or port is None:
        return _port(ep or "") == want_port
    return int(port) == want_port


def spawned_by(ix: StackIndex, procs: Processes, p: Any) -> str | None:
    """The component of the stack at the fork that created process instance p (None: no fork
    seen, or no stack at it)."""
    if p.start_ns is None or p.from_snapshot:
        return None
    parent = procs.procs[p.parent].pid if p.parent is not None else p.ppid
    pids = [x for x in (parent, p.pid) if x is not None]
    return ix.component_at(ix.event_row("fork", p.pid, int(p.start_ns), pids))


def fsync_components(ix: StackIndex, blockio: pa.Table, section: BlockersJson, lo: int,
                     hi: int) -> None:
    """Each `blockers` fsync row gains `components` (ns of its calls by the component of the
    stack at each call) and `component` (the one with the most)."""
    rows = section["fsync"]
    if not rows or blockio.num_rows == 0:
        return
    want = {int(r["pid"]) for r in rows}
    acc: dict[int, Counter[str]] = defaultdict(Counter)
    cols = blockio.select(["ts_ns", "end_ns", "kind", "pid", "tid"]).to_pydict()
    for ts, end, kind, pid, tid in zip(cols["ts_ns"], cols["end_ns"], cols["kind"],
                                       cols["pid"], cols["tid"]):
        if pid is None or int(pid) not in want or ts is None or not lo <= int(ts) <= hi:
            continue
        if kind not in ("fsync", "fdatasync", "sync_file_range"):
            continue
        c = ix.component_at(ix.event_row(kind, tid, int(ts), (pid,))) or NO_STACK
        acc[int(pid)][c] += max(0, int(end or ts) - int(ts))
    for r in rows:
        got = acc.get(int(r["pid"]))
        comps = dict(sorted(got.items(), key=lambda kv: (-kv[1], kv[0]))) if got else {}
        r["components"] = comps
        r["component"] = next(iter(comps), None)
