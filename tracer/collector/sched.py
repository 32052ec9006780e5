"""The scheduler concern's collector side: decode bpf/sched.h records, make each thread's
timeline exact, and turn it into the ``sched``, ``wakeup`` and ``blockio`` tables.

What BPF gives (bpf/sched.bpf.c): per thread, records that tile its time from its first event
on, each with ns per state summing to its span. What this module adds, so that every
thread's rows tile [its first observation, its death or the end of the recording) exactly:

* before a thread's first event: its /proc state read after the probes attached (S/I =
  sleep, D = io), which provably held since the attach when the first event comes after the
  read (every state change is an event); otherwise ``other`` (origin "unknown");
* holes (lost records, or records emitted between the last drain and the final map read):
  ``other`` (origin "lost"); an overlap or a record whose ns do not sum to its span (two CPUs
  updating one thread's map entry at once) is repaired and counted in ``stats``;
* at the end: the interval still open in the BPF map (origin "open");
* records emitted before the thread was first seen on a CPU carry no tgid: they wait for
  the thread's first record that has one (at the latest its death record).

No bcc import here: the recorder passes plain arrays and tuples in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from tracer import schema

EV_SCHED_INTERVAL = 32
EV_SCHED_WAKE = 33
EV_SCHED_BIO = 34
EV_SCHED_SYNC = 35
TYPES = (EV_SCHED_INTERVAL, EV_SCHED_WAKE, EV_SCHED_BIO, EV_SCHED_SYNC)

#: enum sched_state, in ns[] order. "steal" is never a record's state, only a part of a cpu
#: record or of a mixed one: on a CPU, not charged to the thread (bpf/sched.bpf.c "Steal")
STATES = ("cpu", "runqueue", "io", "sleep", "other", "steal")
ST_OTHER = 4
ST_N = 6
F_DIED = 1
F_MIXED = 2
#: the -D defaults of bpf/sched.h (the recorder writes the values it used into meta.json)
LONG_NS = 1_000_000
BUCKET_NS = 10_000_000

INTERVAL = np.dtype([
    ("start_ns", "<u8"), ("end_ns", "<u8"), ("type", "<u4"), ("tid", "<u4"), ("pid", "<u4"),
    ("nfold", "<u2"), ("state", "u1"), ("flags", "u1"), ("ns", "<u8", (ST_N,)),
])
WAKE = np.dtype([
    ("ts_ns", "<u8"), ("idle_start_ns", "<u8"), ("type", "<u4"), ("tid", "<u4"), ("pid", "<u4"),
    ("waker_pid", "<u4"), ("waker_tid", "<u4"), ("kind", "u1"), ("idle_state", "u1"),
    ("softirq", "<u2"), ("irq", "<i4"), ("cpu", "<u4"), ("waker_comm", "S16"),
])
BIO = np.dtype([
    ("issue_ns", "<u8"), ("end_ns", "<u8"), ("type", "<u4"), ("tid", "<u4"), ("pid", "<u4"),
    ("dev", "<u4"), ("sector", "<u8"), ("bytes", "<u4"), ("error", "<i4"), ("rwbs", "S8"),
    ("comm", "S16"),
])
SYNC = np.dtype([
    ("enter_ns", "<u8"), ("exit_ns", "<u8"), ("type", "<u4"), ("tid", "<u4"), ("pid", "<u4"),
    ("kind", "<u4"), ("ret", "<i8"), ("fd", "<i8"), ("stack_id", "<i4"), ("_pad", "<u4"),
])
#: record sizes as the C compiler lays them out (bpf/sched.h; checked by the unit tests)
C_SIZES = {"sched_interval": 80, "sched_wake": 64, "sched_bio": 72, "sched_sync": 56}

WAKER_KIND = {1: "process", 2: "timer", 3: "softirq", 4: "hardirq", 5: "idle"}
SOFTIRQ_NAMES = ("HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED",
                 "HRTIMER", "RCU")
SOFTIRQ_CLASS = {"NET_TX": "network", "NET_RX": "network", "BLOCK": "disk",
                 "IRQ_POLL": "disk", "TIMER": "timer", "HRTIMER": "timer"}
SYNC_KIND = {1: "fsync", 2: "fdatasync", 3: "sync_file_range"}
IDLE_STATE = {2: "io", 3: "sleep", 4: "other"}
#: /proc/PID/task/TID/stat state letter -> the state it means while nothing happens
PROC_STATE = {"S": 3, "I": 3, "D": 2, "T": 3, "t": 3}


def dtypes() -> dict[int, np.dtype]:
    return {EV_SCHED_INTERVAL: INTERVAL, EV_SCHED_WAKE: WAKE, EV_SCHED_BIO: BIO,
            EV_SCHED_SYNC: SYNC}


def classify_irq(name: str) -> str:
    """'disk' | 'network' | 'unknown' for an interrupt's action name (/proc/interrupts)."""
    n = name.lower()
    if any(k in n for k in ("nvme", "ahci", "ata", "scsi", "mmc", "-req.", "virtio-blk",
                            "megasas", "mpt")):
        return "disk"
    if any(k in n for k in ("eth", "ens", "enp", "eno", "wlan", "-input.", "-output.",
                            "virtio-net", "mlx", "ixgbe", "i40e", "igb", "e1000", "-rx",
                            "-tx")):
        return "network"
    return "unknown"


def irq_names(path: Path = Path("/proc/interrupts")) -> dict[int, str]:
    """irq number -> its handler names, from /proc/interrupts (numbered lines only)."""
    out: dict[int, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    ncpu = len(lines[0].split()) if lines else 0
    for line in lines[1:]:
        head, _, rest = line.partition(":")
        if not head.strip().isdigit():
            continue
        parts = rest.split()
        # counts per CPU, then chip name, then hwirq/trigger, then the action names
        names = parts[ncpu:]
        out[int(head)] = " ".join(names[2:] if len(names) > 2 else names)
    return out


@dataclass(frozen=True)
class ThreadAtStart:
    pid: int
    state: str  # the /proc state letter
    read_ns: int  # CLOCK_MONOTONIC just after the read


def threads_at_start(proc: Path = Path("/proc")) -> dict[int, ThreadAtStart]:
    """Every thread's state from /proc, each stamped just after its read (call after attach)."""
    out: dict[int, ThreadAtStart] = {}
    for pdir in proc.iterdir():
        if not pdir.name.isdigit():
            continue
        pid = int(pdir.name)
        try:
            tids = [t.name for t in (pdir / "task").iterdir()]
        except OSError:
            continue
        for t in tids:
            try:
                stat = (pdir / "task" / t / "stat").read_bytes()
            except OSError:
                continue
            now = time.monotonic_ns()
            # "tid (comm) S ...": comm may contain spaces and parens: split at the last ')'
            state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3].decode()
            out[int(t)] = ThreadAtStart(pid, state, now)
    return out


def tgid_of(tid: int) -> int | None:
    try:
        for line in Path(f"/proc/{tid}/status").read_text().splitlines():
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


@dataclass
class OpenThread:
    """A thread's entry in the BPF map when recording stops (struct sched_thread)."""

    tid: int
    tgid: int
    since: int
    acc_start: int
    acc: Sequence[int]
    state: int
    nfold: int


@dataclass
class Frozen:
    open_threads: list[OpenThread]
    end_ns: int  # the freeze: where every thread's timeline ends
    missed: dict[str, int]  # context switches the tracepoint programs never saw (sched.bpf.c)


#: struct sched_thread (bpf/sched.bpf.c): one thread's open interval and folded ns
THREAD = np.dtype([
    ("since", "<u8"), ("acc_start", "<u8"), ("exec_ns", "<u8"), ("acc", "<u8", (ST_N,)),
    ("tgid", "<u4"),
    ("nfold", "<u2"), ("state", "u1"), ("_pad", "u1"), ("cpu", "<u4"), ("tid", "<u4"),
])
#: SCHED_SLOTS in bpf/sched.bpf.c: the direct-mapped array of thread entries
SLOTS = 65536


class MapFds(Protocol):
    """What freeze needs of the loaded programs (probes.Attached): a map's fd by name,
    whether BCC compiled them or they came from the bytecode cache."""

    def map_fd(self, name: str) -> int: ...


def freeze(maps: MapFds, drain: Callable[[], None]) -> Frozen:
    """Stop the sched probes, drain what they emitted (`drain`: the recorder's ring-buffer
    consumer), read the open intervals.

    Plain bpf() syscalls on the maps' fds (bpfcache), so it works the same for programs
    BCC just compiled and for programs loaded from the bytecode cache."""
    from tracer.collector import bpfcache

    # The end is stamped AFTER the flag is set, never before. Every program reads its clock
    # first and the flag second (bpf/sched.bpf.c), so a program that still passes the check
    # read its clock before the flag was set, i.e. before this stamp: no timestamp in the
    # map or the ring can be later than the end. Stamped first (as it was), a program that
    # ran in between (~20-150 us of Python and a syscall, dozens of context switches on a
    # busy machine) read a later clock, saw no flag yet and moved a thread's interval start
    # past the end: an `open` sched row ending after sched.end_ns (issue 24). The update is
    # visible to every CPU when the syscall returns (on x86 the kernel's locked decrement of
    # the map's writer count after the copy, bpf_map_write_active_dec, is a full barrier).
    bpfcache.update(maps.map_fd("sched_frozen"), _U32_ZERO, _FROZEN)
    freeze_ns = time.monotonic_ns()
    time.sleep(0.005)  # a probe that read the flag just before it was set finishes in us
    drain()
    missed = {"switch_out": 0, "switch_in": 0}
    try:
        fd = maps.map_fd("sched_missed")
        for i, name in enumerate(missed):
            raw = bpfcache.lookup(fd, i.to_bytes(4, "little"), 8, percpu=True)
            missed[name] = sum(np.frombuffer(raw, "<u8").tolist())
    except (bpfcache.CacheError, KeyError, OSError):
        pass  # the count is diagnostic only
    return Frozen(read_open_threads(maps), freeze_ns, missed)


_U32_ZERO = b"\0\0\0\0"
#: sched_frozen's value once frozen: any non-zero u64 (the programs test for non-zero)
_FROZEN = (1).to_bytes(8, "little")


def read_open_threads(maps: MapFds) -> list[OpenThread]:
    """Every thread's entry: the array's claimed slots, then the hash map's overflow (a tid
    is in one of them; were it in both, the slot wins, as in sched_get)."""
    from tracer.collector import bpfcache

    slots = np.frombuffer(bpfcache.read_mmapable_array(
        maps.map_fd("sched_slots"), THREAD.itemsize, SLOTS), THREAD)
    rows = slots[slots["tid"] != 0]
    fd = maps.map_fd("sched_threads")
    extra = [bpfcache.lookup(fd, k, THREAD.itemsize) for k in bpfcache.keys(fd, 4)]
    if extra:
        more = np.frombuffer(b"".join(extra), THREAD)
        rows = np.concatenate([rows, more[~np.isin(more["tid"], rows["tid"])]])
    return [OpenThread(tid, tgid, since, acc_start, acc, state, nfold)
            for tid, tgid, since, acc_start, acc, state, nfold in zip(
                rows["tid"].tolist(), rows["tgid"].tolist(), rows["since"].tolist(),
                rows["acc_start"].tolist(), rows["acc"].tolist(), rows["state"].tolist(),
                rows["nfold"].tolist())]


@dataclass
class _Rows:
    cols: dict[str, list[Any]] = field(default_factory=lambda: {f.name: [] for f in schema.SCHED})

    def add(self, start: int, end: int, pid: int | None, tid: int, ns: Sequence[int],
            state: str, switches: int, exited: bool, origin: str) -> None:
        c = self.cols
        c["start_ns"].append(start)
        c["end_ns"].append(end)
        c["pid"].append(pid)
        c["tid"].append(tid)
        c["state"].append(state)
        c["cpu_ns"].append(ns[0])
        c["runqueue_ns"].append(ns[1])
        c["io_ns"].append(ns[2])
        c["sleep_ns"].append(ns[3])
        c["other_ns"].append(ns[4])
        c["steal_ns"].append(ns[5])
        c["switches"].append(switches)
        c["exited"].append(exited)
        c["origin"].append(origin)

    def table(self) -> pa.Table:
        return pa.table(self.cols, schema=schema.SCHED)


def _one(state: int, dur: int) -> list[int]:
    ns = [0] * ST_N
    ns[state] = dur
    return ns


class SchedCollector:
    """Stateful across batches: per-thread last end, learnt tgids, rows awaiting a tgid."""

    def __init__(self, start_ns: int, at_start: dict[int, ThreadAtStart] | None = None,
                 irqs: dict[int, str] | None = None) -> None:
        self.start_ns = start_ns
        self.at_start = at_start or {}
        self.irqs = irqs or {}
        self._last_end: dict[int, int] = {}  # tid -> end of its last row (absent: none yet)
        self._tgid: dict[int, int] = {}
        self._pending: dict[int, list[tuple[Any, ...]]] = {}  # tid -> rows with no tgid yet
        self.stats = {"repaired_sum": 0, "repaired_overlap": 0, "lost_holes": 0,
                      "lost_hole_ns": 0}

    # -- intervals --------------------------------------------------------------------------
    def _emit(self, rows: _Rows, start: int, end: int, pid: int, tid: int, ns: Sequence[int],
              state: str, switches: int, exited: bool, origin: str) -> None:
        if end <= start:
            return
        if pid == 0:
            pid = self._tgid.get(tid, 0)
        if pid == 0:
            self._pending.setdefault(tid, []).append(
                (start, end, tid, list(ns), state, switches, exited, origin))
            return
        held = self._pending.pop(tid, None)
        if held:
            for h in held:
                rows.add(h[0], h[1], pid, *h[2:])
        rows.add(start, end, pid, tid, ns, state, switches, exited, origin)

    def _first(self, rows: _Rows, tid: int, pid: int, first_start: int) -> None:
        """Time before a thread's first event: its /proc state if provably constant."""
        seen = self.at_start.get(tid)
        if seen is None or first_start <= self.start_ns:
            return  # born during the trace (its first event is its birth), or no gap
        st = PROC_STATE.get(seen.state) if first_start > seen.read_ns else None
        if st is None:
            self._emit(rows, self.start_ns, first_start, pid or seen.pid, tid,
                       _one(ST_OTHER, first_start - self.start_ns), "other", 0, False,
                       "unknown")
        else:
            self._emit(rows, self.start_ns, first_start, pid or seen.pid, tid,
                       _one(st, first_start - self.start_ns), STATES[st], 0, False, "proc")

    def _place(self, rows: _Rows, tid: int, pid: int, start: int) -> int:
        """Make the tiling contiguous before a row starting at `start`; return its start."""
        last = self._last_end.get(tid)
        if last is None:
            self._first(rows, tid, pid, start)
        elif start > last:
            self.stats["lost_holes"] += 1
            self.stats["lost_hole_ns"] += start - last
            self._emit(rows, last, start, pid, tid, _one(ST_OTHER, start - last), "other", 0,
                       False, "lost")
        elif start < last:
            self.stats["repaired_overlap"] += 1
            return last
        return start

    def _intervals(self, a: np.ndarray, rows: _Rows) -> None:
        order = np.lexsort((a["start_ns"], a["tid"]))
        a = a[order]
        for start, end, tid, pid, nfold, state, flags, ns in zip(
                a["start_ns"].tolist(), a["end_ns"].tolist(), a["tid"].tolist(),
                a["pid"].tolist(), a["nfold"].tolist(), a["state"].tolist(),
                a["flags"].tolist(), a["ns"].tolist()):
            if pid:
                self._tgid[tid] = pid
            s0 = self._place(rows, tid, pid, start)
            if end <= s0:
                continue
            ns = _fit(ns, end - s0, self.stats) if (s0 != start or sum(ns) != end - start) \
                else ns
            name = "mixed" if flags & F_MIXED else STATES[min(state, ST_OTHER)]
            died = bool(flags & F_DIED)
            self._emit(rows, s0, end, pid, tid, ns, name, nfold, died, "bpf")
            if died:
                self._last_end.pop(tid, None)
                self._tgid.pop(tid, None)
                # the next thread with this tid is a new one, born during the trace
                self.at_start.pop(tid, None)
            else:
                self._last_end[tid] = end

    # -- public -----------------------------------------------------------------------------
    def feed(self, typed: dict[int, list[np.ndarray]]) -> dict[str, pa.Table]:
        out: dict[str, pa.Table] = {}
        arrs = {t: np.concatenate(v) if len(v) > 1 else v[0] for t, v in typed.items() if v}
        if EV_SCHED_INTERVAL in arrs:
            rows = _Rows()
            self._intervals(arrs[EV_SCHED_INTERVAL], rows)
            t = rows.table()
            if t.num_rows:
                out["sched"] = t
        if EV_SCHED_WAKE in arrs:
            out["wakeup"] = self._wakeups(arrs[EV_SCHED_WAKE])
        io = [self._bios(arrs[EV_SCHED_BIO])] if EV_SCHED_BIO in arrs else []
        if EV_SCHED_SYNC in arrs:
            io.append(self._syncs(arrs[EV_SCHED_SYNC]))
        if io:
            out["blockio"] = pa.concat_tables(io) if len(io) > 1 else io[0]
        return out

    def finish(self, open_threads: Iterable[OpenThread], end_ns: int) -> dict[str, pa.Table]:
        """Recording stopped at end_ns: close every thread's timeline there."""
        rows = _Rows()
        open_tids = set()
        for o in open_threads:
            open_tids.add(o.tid)
            pid = o.tgid or self._tgid.get(o.tid) or 0
            if o.tgid:
                self._tgid[o.tid] = o.tgid
            s0 = self._place(rows, o.tid, pid, o.acc_start)
            if o.since > s0:
                acc = _fit(list(o.acc), o.since - s0, self.stats)
                self._emit(rows, s0, o.since, pid, o.tid, acc, "mixed", o.nfold, False, "open")
            s1 = max(o.since, s0)
            if end_ns > s1:
                st = min(o.state, ST_OTHER)
                self._emit(rows, s1, end_ns, pid, o.tid, _one(st, end_ns - s1), STATES[st], 0,
                           False, "open")
            self._last_end[o.tid] = max(end_ns, s1)
        # threads alive at start that never had an event: their /proc state held throughout
        for tid, seen in self.at_start.items():
            if tid in self._last_end or tid in open_tids or tid in self._pending:
                continue
            known = PROC_STATE.get(seen.state)
            state = known if known is not None else ST_OTHER
            self._emit(rows, self.start_ns, end_ns, seen.pid, tid,
                       _one(state, end_ns - self.start_ns), STATES[state], 0, False,
                       "proc" if known is not None else "unknown")
        # rows still waiting for a tgid: ask /proc, else leave pid null
        for tid, held in list(self._pending.items()):
            tgid = tgid_of(tid)
            for h in held:
                rows.add(h[0], h[1], tgid, *h[2:])
        self._pending.clear()
        t = rows.table()
        return {"sched": t} if t.num_rows else {}

    # -- wakeups and disk -------------------------------------------------------------------
    def _wakeups(self, a: np.ndarray) -> pa.Table:
        n = len(a)
        kinds = a["kind"].tolist()
        softirq = [SOFTIRQ_NAMES[v - 1] if 0 < v <= len(SOFTIRQ_NAMES) else None
                   for v in a["softirq"].tolist()]
        irq = a["irq"].tolist()
        irq_name = [self.irqs.get(i) if i >= 0 else None for i in irq]
        waker: list[str] = []
        for k, s, nm in zip(kinds, softirq, irq_name):
            kind = WAKER_KIND.get(k, "idle")
            if kind == "softirq":
                waker.append(SOFTIRQ_CLASS.get(s or "", "unknown"))
            elif kind == "hardirq":
                waker.append(classify_irq(nm or ""))
            elif kind == "idle":
                waker.append("unknown")
            else:
                waker.append(kind)
        is_proc = np.array([w == "process" for w in waker], dtype=bool)
        pid = a["pid"].astype(np.int32)
        tids = a["tid"].tolist()
        pids = [p or self._tgid.get(t) or None for p, t in zip(pid.tolist(), tids)]
        comm = [c.split(b"\0", 1)[0].decode("utf-8", "replace") if p else None
                for c, p in zip(a["waker_comm"].tolist(), is_proc.tolist())]
        idle_start = a["idle_start_ns"]
        return pa.table({
            "ts_ns": pa.array(a["ts_ns"], pa.uint64()),
            "pid": pa.array(pids, pa.int32()),
            "tid": pa.array(a["tid"].astype(np.int32), pa.int32()),
            "idle_start_ns": pa.array(idle_start, pa.uint64(), mask=idle_start == 0),
            "idle_state": pa.array([IDLE_STATE.get(v, "other") for v in a["idle_state"].tolist()],
                                   pa.string()),
            "waker": pa.array(waker, pa.string()),
            "waker_pid": pa.array(a["waker_pid"].astype(np.int32), pa.int32(), mask=~is_proc),
            "waker_tid": pa.array(a["waker_tid"].astype(np.int32), pa.int32(), mask=~is_proc),
            "waker_comm": pa.array(comm, pa.string()),
            "irq": pa.array(a["irq"], pa.int32(), mask=a["irq"] < 0),
            "irq_name": pa.array(irq_name, pa.string()),
            "softirq": pa.array(softirq, pa.string()),
            "cpu": pa.array(a["cpu"].astype(np.int32), pa.int32()),
        }, schema=schema.WAKEUP) if n else schema.WAKEUP.empty_table()

    def _bios(self, a: np.ndarray) -> pa.Table:
        dev = a["dev"].tolist()
        return pa.table({
            "ts_ns": pa.array(a["issue_ns"], pa.uint64()),
            "end_ns": pa.array(a["end_ns"], pa.uint64()),
            "kind": pa.array(["request"] * len(a), pa.string()),
            "pid": pa.array(a["pid"].astype(np.int32), pa.int32()),
            "tid": pa.array(a["tid"].astype(np.int32), pa.int32()),
            "comm": pa.array([_cstr(c) for c in a["comm"].tolist()], pa.string()),
            "dev": pa.array([f"{d >> 20}:{d & 0xFFFFF}" for d in dev], pa.string()),
            "sector": pa.array(a["sector"], pa.uint64()),
            "bytes": pa.array(a["bytes"].astype(np.uint64), pa.uint64()),
            "rwbs": pa.array([_cstr(c) for c in a["rwbs"].tolist()], pa.string()),
            "ret": pa.array(a["error"].astype(np.int64), pa.int64()),
        }, schema=schema.BLOCKIO)

    def _syncs(self, a: np.ndarray) -> pa.Table:
        n = len(a)
        return pa.table({
            "ts_ns": pa.array(a["enter_ns"], pa.uint64()),
            "end_ns": pa.array(a["exit_ns"], pa.uint64()),
            "kind": pa.array([SYNC_KIND.get(k, "fsync") for k in a["kind"].tolist()],
                             pa.string()),
            "pid": pa.array(a["pid"].astype(np.int32), pa.int32()),
            "tid": pa.array(a["tid"].astype(np.int32), pa.int32()),
            "comm": pa.nulls(n, pa.string()),
            "dev": pa.nulls(n, pa.string()),
            "sector": pa.nulls(n, pa.uint64()),
            "bytes": pa.nulls(n, pa.uint64()),
            "rwbs": pa.nulls(n, pa.string()),
            "ret": pa.array(a["ret"], pa.int64()),
        }, schema=schema.BLOCKIO)


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _fit(ns: Sequence[int], span: int, stats: dict[str, int]) -> list[int]:
    """ns per state adjusted to sum exactly to span: a shortfall is `other`; an excess is
    taken from the largest states first (a record clipped by an overlap, or torn by two CPUs
    updating one thread's map entry at once)."""
    out = [int(x) for x in ns]
    diff = span - sum(out)
    if diff == 0:
        return out
    stats["repaired_sum"] += 1
    if diff > 0:
        out[ST_OTHER] += diff
        return out
    excess = -diff
    for i in sorted(range(ST_N), key=lambda j: -out[j]):
        take = min(out[i], excess)
        out[i] -= take
        excess -= take
        if not excess:
            break
    return out


def machine_facts() -> dict[str, Any]:
    """What meta.json records about this concern's configuration."""
    return {"long_ns": LONG_NS, "bucket_ns": BUCKET_NS, "ncpu": os.cpu_count()}
