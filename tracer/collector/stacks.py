"""The stacks concern's collector side: targets, samples, the stack map, mappings.

What BPF gives (bpf/stacks.bpf.c): on-CPU samples of target processes (a 32-byte record with
a stack id), and a stack id inside the event records that explain a wait (fork, sockops,
init/finit_module, fsync family). What this module does with them:

* ``samples``: one row per stack taken, with the kind, tid and ts_ns of the event row it
  belongs to (computed from the same record the assembler builds that row from, so the match
  is exact: schema.SAMPLES);
* ``stacks``: each id the samples reference, read from the BPF_STACK_TRACE map once, during
  the recording (the map is never emptied: see bpf/stacks.bpf.c and docs/stacks.md);
* ``mappings``: /proc/PID/maps of a process when it first shows up with a stack, and again
  after it execs (executable file mappings only), with the binary's key (schema.BINARIES);
* meta.json ``stacks``: sample rate, profile, targets, errors by errno, counts.

Targets live in BPF (stacks.bpf.c); this module writes the profile's executable names into
them, the processes of those names already running, and the seed of `record -- CMD`.
No bcc import: maps are read and written by fd (bpfcache).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tracer import schema
from tracer._errors import TracerError
from tracer.collector import bpfcache
from tracer.collector import decode as d
from tracer.collector.stacktargets import PROFILE_EXES, SAMPLE_HZ

__all__ = ["SAMPLE_HZ", "StackCollector", "exec_mappings"]

#: the vDSO's line in /proc/PID/maps (tracer.symbols.vdso.VDSO: not imported here, the recorder
#: loads tracer.symbols only at stop)
VDSO = "[vdso]"

CLONE_THREAD = 0x00010000
EV_SCHED_SYNC = 35
SYNC_KIND = {1: "fsync", 2: "fdatasync", 3: "sync_file_range"}
MODULE_SYSCALL_KIND = {3: "init_module", 4: "finit_module"}
ERRNO_NAMES = {-errno.EFAULT: "EFAULT", -errno.EEXIST: "EEXIST", -errno.ENOMEM: "ENOMEM",
               -errno.EINVAL: "EINVAL", -errno.ENOENT: "ENOENT"}

@dataclass
class _Mapping:
    start: int
    end: int
    offset: int
    path: str


def exec_mappings(pid: int, proc: Path = Path("/proc")) -> list[_Mapping]:
    """The executable mappings of a process (/proc/PID/maps lines with x and a path, and the
    vDSO)."""
    out = []
    for line in (proc / str(pid) / "maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        if not parts[5].startswith("/") and parts[5] != VDSO:
            continue
        lo, hi = parts[0].split("-")
        out.append(_Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), parts[5]))
    return out


@dataclass
class StackCollector:
    """Turns stack-carrying records into samples/stacks/mappings rows, batch by batch."""

    stack_fd: int
    value_size: int
    sample_hz: int
    profile: str
    proc: Path = Path("/proc")
    #: stack ids already written to `stacks`
    seen_ids: set[int] = field(default_factory=set)
    #: pid -> CLOCK_MONOTONIC ns when its mappings were last read
    mapped_at: dict[int, int] = field(default_factory=dict)
    #: pid -> ts_ns of its latest exec seen (its mappings are re-read after it)
    last_exec: dict[int, int] = field(default_factory=dict)
    #: mappings rows read between batches (peek), written with the next batch
    pending_maps: list[dict[str, Any]] = field(default_factory=list)
    #: the stack_targets map (peek asks it whether an exec'd process is a target)
    targets_fd: int = -1
    #: the stack_spill map (bpf/stacks.bpf.c: stacks whose stack_traces bucket was taken),
    #: whose ids are handed out from spill_base (stack_traces' size) on
    spill_fd: int = -1
    spill_base: int = 1 << 62
    #: (path, dev, ino, size, mtime) -> binary key
    keys: dict[tuple[str, int, int, int, int], str] = field(default_factory=dict)
    #: the binary key of the recorder's own vDSO (tracer/symbols/vdso.py), once known
    vdso_key: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    lookup_failed: int = 0
    unmapped_pids: set[int] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)
    #: for the symbol extract at stop: every (pid, stack id) taken, the frames of each id,
    #: every mappings row written
    pid_stacks: set[tuple[int, int]] = field(default_factory=set)
    frames: dict[int, list[int]] = field(default_factory=dict)
    mapping_rows: list[dict[str, Any]] = field(default_factory=list)
    #: "extracted" | "not extracted: why" (meta.json stacks.symbols)
    symbols_note: str = "not extracted: it runs at stop, after the probes are detached"

    # -- rows from records --------------------------------------------------------------------
    def feed(self, typed: Mapping[int, list[np.ndarray]]) -> dict[str, pa.Table]:
        arrs = {t: d.concat(v) for t, v in typed.items() if v}
        cols: list[tuple[np.ndarray, ...]] = []  # (ts, kind index, pid, tid, cpu, stack)
        kinds: list[str] = []

        def add(ts: np.ndarray, kind: np.ndarray | str, pid: np.ndarray, tid: np.ndarray,
                stack: np.ndarray, cpu: np.ndarray | None = None) -> None:
            keep = stack != d.STACK_NOT_TAKEN
            if not keep.any():
                return
            n = int(keep.sum())
            if isinstance(kind, str):
                if kind not in kinds:
                    kinds.append(kind)
                kidx = np.full(n, kinds.index(kind), np.int64)
            else:
                names = kind[keep].tolist()
                for k in set(names):
                    if k not in kinds:
                        kinds.append(k)
                kidx = np.array([kinds.index(k) for k in names], np.int64)
            cols.append((ts[keep].astype(np.uint64), kidx, pid[keep].astype(np.int32),
                         tid[keep].astype(np.int32),
                         cpu[keep].astype(np.int32) if cpu is not None
                         else np.full(n, -1, np.int32),
                         stack[keep].astype(np.int64)))

        a = arrs.get(d.EV_STACK_SAMPLE)
        if a is not None:
            add(a["ts_ns"], "cpu", a["pid"], a["tid"], a["stack_id"], a["cpu"])
        a = arrs.get(d.EV_FORK)
        if a is not None:
            # the fork/thread row's tid is the NEW task's (schema.PROCESS); the stack (and
            # so the pid it is symbolised through) is the creating task's
            thread = (a["clone_flags"] & CLONE_THREAD) != 0
            add(a["ts_ns"], np.where(thread, "thread", "fork"), a["pid"], a["child_tid"],
                a["stack_id"])
        for t, kind in d.SOCKOP_KIND.items():
            a = arrs.get(t)
            if a is not None:
                # the socket row's ts_ns is the syscall entry when known (assemble.py)
                ts = np.where(a["enter_ns"] != 0, a["enter_ns"], a["ts_ns"])
                add(ts, kind, a["pid"], a["tid"], a["stack_id"])
        a = arrs.get(d.EV_MODULE)
        if a is not None:
            sc = np.isin(a["kind"], list(MODULE_SYSCALL_KIND))
            if sc.any():
                m = a[sc]
                add(m["ts_ns"], np.array([MODULE_SYSCALL_KIND[int(k)] for k in m["kind"]]),
                    m["pid"], m["tid"], m["stack_id"])
        a = arrs.get(EV_SCHED_SYNC)
        if a is not None:
            # the blockio row's ts_ns is the call's entry (collector/sched.py)
            add(a["enter_ns"], np.array([SYNC_KIND.get(int(k), "fsync") for k in a["kind"]]),
                a["pid"], a["tid"], a["stack_id"])
        a = arrs.get(d.EV_EXEC)
        if a is not None:
            self._note_execs(a)
        out: dict[str, pa.Table] = {}
        if not cols:
            if self.pending_maps:
                out["mappings"] = self._maps_table([])
            return out
        ts, kidx, pid, tid, cpu, stack = (np.concatenate(c) for c in zip(*cols))
        order = np.argsort(ts, kind="stable")
        ts, kidx, pid, tid, cpu, stack = (x[order] for x in (ts, kidx, pid, tid, cpu, stack))
        ok = stack >= 0
        kind_arr = pa.array(kinds, pa.string()).take(pa.array(kidx))
        out["samples"] = pa.Table.from_arrays(
            [pa.array(ts), kind_arr, pa.array(pid), pa.array(tid),
             pa.array(cpu, mask=cpu < 0), pa.array(stack, mask=~ok),
             pa.array(stack.astype(np.int32), mask=ok)],
            schema=schema.SAMPLES)
        for k, n in zip(*np.unique(kind_arr.to_numpy(zero_copy_only=False),
                                   return_counts=True)):
            self.counts[str(k)] = self.counts.get(str(k), 0) + int(n)
        for e, n in zip(*np.unique(stack[~ok], return_counts=True)):
            name = ERRNO_NAMES.get(int(e), str(int(e)))
            self.errors[name] = self.errors.get(name, 0) + int(n)
        pairs = np.unique((pid[ok].astype(np.int64) << 32) | stack[ok])
        self.pid_stacks.update((int(x >> 32), int(x & 0xFFFFFFFF)) for x in pairs.tolist())
        stacks = self._read_stacks(np.unique(stack[ok]).tolist())
        if stacks is not None:
            out["stacks"] = stacks
        maps = self._maps_table(np.unique(pid[ok]).tolist())
        if maps is not None:
            out["mappings"] = maps
        return out

    def _note_execs(self, a: np.ndarray) -> None:
        for pid, ts in zip(a["pid"].tolist(), a["ts_ns"].tolist()):
            self.last_exec[pid] = max(ts, self.last_exec.get(pid, 0))

    def peek(self, chunks: Mapping[int, bytes]) -> None:
        """Between batches (every ring-buffer poll, ~50 ms): read the mappings of a target
        the moment it shows up, while it still runs: a sample of a new process, or an exec
        of a target. A batch comes only once a second, and a helper that lived less than
        that would have no mappings (its PCs could not be symbolised)."""
        pids: set[int] = set()
        raw = chunks.get(d.STACK_SAMPLE.itemsize)
        if raw:
            a = np.frombuffer(raw, d.STACK_SAMPLE)
            pids.update(np.unique(a["pid"][a["type"] == d.EV_STACK_SAMPLE]).tolist())
        raw = chunks.get(d.EXEC.itemsize)
        if raw and self.targets_fd >= 0:
            a = np.frombuffer(raw, d.EXEC)
            a = a[a["type"] == d.EV_EXEC]
            self._note_execs(a)
            for pid in set(a["pid"].tolist()):
                with contextlib.suppress(bpfcache.CacheError):
                    bpfcache.lookup(self.targets_fd, struct.pack("<I", pid), 1)
                    pids.add(pid)
        if pids:
            self.pending_maps += self._read_mappings(sorted(pids))

    def _maps_table(self, pids: list[int]) -> pa.Table | None:
        rows = self.pending_maps + self._read_mappings(pids)
        self.pending_maps = []
        self.mapping_rows += rows
        if not rows:
            return None
        return pa.Table.from_pylist(rows, schema=schema.MAPPINGS)

    # -- the stack map ------------------------------------------------------------------------
    def _read_stacks(self, ids: list[int]) -> pa.Table | None:
        new = [i for i in ids if i not in self.seen_ids]
        if not new:
            return None
        got_ids: list[int] = []
        frames: list[list[int]] = []
        n = self.value_size // 8
        for sid in new:
            self.seen_ids.add(sid)
            fd, key = (self.stack_fd, sid) if sid < self.spill_base else \
                (self.spill_fd, sid - self.spill_base)
            try:
                raw = bpfcache.lookup(fd, struct.pack("<I", key), self.value_size)
            except bpfcache.CacheError:
                self.lookup_failed += 1  # counted: samples then reference an id with no row
                continue
            pcs = struct.unpack(f"<{n}Q", raw)
            depth = pcs.index(0) if 0 in pcs else n
            got_ids.append(sid)
            frames.append(list(pcs[:depth]))
            self.frames[sid] = frames[-1]
        if not got_ids:
            return None
        return pa.Table.from_arrays([pa.array(got_ids, pa.int64()),
                                     pa.array(frames, pa.list_(pa.uint64()))],
                                    schema=schema.STACKS)

    # -- /proc/PID/maps -----------------------------------------------------------------------
    def _read_mappings(self, pids: list[int]) -> list[dict[str, Any]]:
        """Mappings rows of those pids not read since their last exec."""
        rows: list[dict[str, Any]] = []
        for pid in pids:
            self.pids.add(pid)
            at = self.mapped_at.get(pid)
            if at is not None and self.last_exec.get(pid, 0) <= at:
                continue
            now = time.monotonic_ns()
            self.mapped_at[pid] = now
            try:
                maps = exec_mappings(pid, self.proc)
            except OSError:
                # gone before we looked (a short-lived helper): its PCs stay unsymbolised
                self.unmapped_pids.add(pid)
                continue
            for m in maps:
                rows.append({"ts_ns": now, "pid": pid, "start": m.start, "end": m.end,
                             "file_offset": m.offset, "path": m.path,
                             "binary": self._key(pid, m)})
        return rows

    def _key(self, pid: int, m: _Mapping) -> str | None:
        # the file the process really has mapped (map_files works for a deleted or
        # replaced path too), else the path
        if m.path == VDSO:
            return self._vdso_key(m)
        mf = self.proc / str(pid) / "map_files" / f"{m.start:x}-{m.end:x}"
        for p in (mf, Path(m.path)):
            try:
                st = os.stat(p)
                ident = (m.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                key = self.keys.get(ident)
                if key is None:
                    from tracer import symbols

                    key = symbols.identify(str(p)).binary
                    self.keys[ident] = key
                return key
            except (OSError, TracerError):  # symbols.BinaryError: not readable
                continue
        return None

    def _vdso_key(self, m: _Mapping) -> str:
        """The recorder's own vDSO names this one when it is the same size (same kernel, same
        ABI: tracer/symbols/vdso.py); else "path:[vdso]" (the extract then
        leaves it unnamed)."""
        from tracer import symbols
        from tracer.symbols import vdso

        own = vdso.image()
        if own is None or own[1] != m.end - m.start:
            return "path:" + VDSO
        if self.vdso_key is None:
            try:
                self.vdso_key = symbols.identify(VDSO).binary
            except TracerError:
                return "path:" + VDSO
        return self.vdso_key

    def extract_symbols(self) -> dict[str, pa.Table]:
        """The symbol extract (tables `binaries` and `symbols`) of every PC of every stack
        taken, resolved through the recorded mappings (tracer.symbols): run at stop, after
        the probes are detached. Problems per binary go to binaries.problem."""
        from tracer import symbols  # pyelftools: imported when needed, not at start

        sids = sorted(self.frames)
        stacks = pa.table({"stack_id": pa.array(sids, pa.int64()),
                           "frames": pa.array([self.frames[i] for i in sids],
                                              pa.list_(pa.uint64()))})
        pairs = sorted(self.pid_stacks)
        samples = pa.table({"pid": pa.array([p for p, _ in pairs], pa.int32()),
                            "stack_id": pa.array([s for _, s in pairs], pa.int64())})
        pcs = symbols.stack_pcs(stacks, samples)
        binaries, syms = symbols.extract(self.mapping_rows, pcs)
        return {"binaries": binaries, "symbols": syms}

    def meta(self, targets_at_start: int) -> dict[str, Any]:
        return {
            "sample_hz": self.sample_hz,
            "profile": self.profile,
            "target_exes": list(PROFILE_EXES.get(self.profile, ())),
            "targets_running_at_start": targets_at_start,
            "processes_with_stacks": len(self.pids),
            # gone before their /proc/PID/maps could be read: their PCs stay unsymbolised
            "processes_unmapped": len(self.unmapped_pids),
            "unmapped_pids": sorted(self.unmapped_pids)[:100],
            "counts": dict(sorted(self.counts.items())),
            "errors": dict(sorted(self.errors.items())),
            "stacks": len(self.seen_ids) - self.lookup_failed,
            # of which taken from the spill map: their stack_traces bucket held another stack
            "stacks_spilled": sum(1 for i in self.seen_ids if i >= self.spill_base),
            **({"spill_base": self.spill_base} if self.spill_fd >= 0 else {}),
            "stack_lookups_failed": self.lookup_failed,
            "symbols": self.symbols_note,
        }
