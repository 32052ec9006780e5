"""The symbol extract (written at record stop) and the reader's stack namer (used later)."""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tracer import schema
from tracer.symbols.binary import BinarySymbols, Identity, identify
from tracer.symbols.elf import BinaryError
from tracer.symbols.gopclntab import Frame


@dataclass(frozen=True)
class _Map:
    ts_ns: int
    start: int
    end: int
    file_offset: int
    path: str
    binary: str | None


def _mappings_by_pid(mappings: pa.Table | Iterable[Mapping[str, Any]]) -> dict[int, list[_Map]]:
    rows = mappings.to_pylist() if isinstance(mappings, pa.Table) else list(mappings)
    by_pid: dict[int, list[_Map]] = defaultdict(list)
    for r in rows:
        by_pid[int(r["pid"])].append(
            _Map(
                int(r.get("ts_ns") or 0),
                int(r["start"]),
                int(r["end"]),
                int(r.get("file_offset") or 0),
                str(r.get("path") or ""),
                r.get("binary"),
            )
        )
    for maps in by_pid.values():
        maps.sort(key=lambda m: (m.ts_ns, m.start))
    return by_pid


def stack_pcs(stacks: pa.Table, samples: pa.Table) -> set[tuple[int, int]]:
    """The (pid, pc) pairs to resolve for the recorded stacks: frame 0 at its PC, every outer
    frame at PC - 1 (a return address: PC - 1 lies in the call instruction, so the call's line
    and inlining are the ones named; the return address may already be the next line)."""
    frames_of: dict[int, list[int]] = {}
    for sid, frames in zip(
        stacks.column("stack_id").to_pylist(), stacks.column("frames").to_pylist()
    ):
        if sid is not None and frames:
            frames_of[int(sid)] = frames
    pairs: set[tuple[int, int]] = set()
    seen: set[tuple[int, int]] = set()
    for pid, sid in zip(samples.column("pid").to_pylist(), samples.column("stack_id").to_pylist()):
        if sid is None or pid is None or (pid, sid) in seen:
            continue
        seen.add((pid, sid))
        for depth, pc in enumerate(frames_of.get(int(sid), ())):
            pairs.add((int(pid), int(pc) - (1 if depth else 0)))
    return pairs


def _binary_row(
    key: str, path: str, ident: Identity | None, symbolizer: str, problem: str | None
) -> dict[str, Any]:
    return {
        "binary": key,
        "path": path,
        "gnu_build_id": ident.gnu_build_id if ident else None,
        "go_build_id": ident.go_build_id if ident else None,
        "go_version": ident.go_version if ident else None,
        "size": ident.size if ident else None,
        "mtime_ns": ident.mtime_ns if ident else None,
        "arch": ident.arch if ident else None,
        "symbolizer": symbolizer,
        "problem": problem,
    }


def _open_checked(key: str, paths: list[str]) -> tuple[BinarySymbols | None, str, str | None]:
    """Open the first of paths whose identity now is `key`: (symbols, path, problem)."""
    problem: str | None = None
    for path in paths:
        try:
            now = identify(path)
        except BinaryError as e:
            problem = f"{path}: {e}"
            continue
        if now.binary != key:
            problem = f"replaced since recording: {path} is now {now.binary}"
            continue
        return BinarySymbols(path), path, None
    return None, paths[0] if paths else "", problem or "no path to open"


def extract(
    mappings: pa.Table | Iterable[Mapping[str, Any]], pcs: Iterable[tuple[int, int]]
) -> tuple[pa.Table, pa.Table]:
    """(binaries, symbols) tables for the recorded PCs, in the schema's types.

    mappings: the MAPPINGS rows (a `binary` of None is filled in from the file now); pcs: the
    (pid, pc) pairs of :func:`stack_pcs`. Each distinct binary is opened once and each distinct
    (binary, address) resolved once; a PC is resolved in every mapping of its pid that holds
    it (a pid that exec'd has the mappings of both programs). Problems go to `problem`.
    """
    by_pid = _mappings_by_pid(mappings)
    paths_of: dict[str, list[str]] = defaultdict(list)
    for maps in by_pid.values():
        for i, m in enumerate(maps):
            if m.binary is None:
                try:
                    key = identify(m.path).binary
                except BinaryError:
                    key = "path:" + m.path
                maps[i] = m = _Map(m.ts_ns, m.start, m.end, m.file_offset, m.path, key)
            if m.binary is not None and m.path not in paths_of[m.binary]:
                paths_of[m.binary].append(m.path)
    wanted: dict[str, set[int]] = defaultdict(set)
    for pid, pc in pcs:
        for m in by_pid.get(int(pid), ()):
            if m.start <= pc < m.end and m.binary is not None:
                wanted[m.binary].add(pc - m.start + m.file_offset)
    brows: list[dict[str, Any]] = []
    srows: dict[str, list[Any]] = {k: [] for k in schema.SYMBOLS.names}
    for key in sorted(paths_of):
        syms, path, problem = _open_checked(key, paths_of[key])
        if syms is None:
            # Nothing of the file now describes the binary recorded: only its key is known.
            brows.append(_binary_row(key, path, None, "none", problem))
            continue
        with syms:
            brows.append(_binary_row(key, path, syms.identity, syms.symbolizer, syms.problem))
            for addr, frames in sorted(syms.resolve(wanted.get(key, ())).items()):
                for depth, fr in enumerate(frames):
                    srows["binary"].append(key)
                    srows["address"].append(addr)
                    srows["depth"].append(depth)
                    srows["function"].append(fr.function)
                    srows["file"].append(fr.file or None)
                    srows["line"].append(fr.line or None)
    binaries = pa.Table.from_pylist(brows, schema=schema.BINARIES)
    symbols = pa.Table.from_pydict(srows, schema=schema.SYMBOLS)
    return binaries, symbols


@dataclass(frozen=True)
class NamedFrame:
    """One frame of a named stack. `resolved` False: `function` is "basename+0xOFFSET" (or
    "0xPC" outside every mapping) and `reason` says why it has no name."""

    function: str
    file: str
    line: int
    binary: str | None
    address: int
    resolved: bool
    reason: str | None = None


class StackNamer:
    """Names the frames of recorded stacks from a trace's tables: the symbol extract first;
    when the extract lacks a binary, the binary itself if it is still the same file (identity
    matches); else "basename+0xOFFSET" with the reason. No exception for bad input."""

    def __init__(self, tables: Mapping[str, pa.Table | None], *, open_binaries: bool = True):
        self._open = open_binaries
        stacks = tables.get("stacks")
        self._frames: dict[int, list[int]] = {}
        if stacks is not None:
            for sid, fr in zip(
                stacks.column("stack_id").to_pylist(), stacks.column("frames").to_pylist()
            ):
                if sid is not None:
                    self._frames[int(sid)] = [int(x) for x in fr or ()]
        m = tables.get("mappings")
        self._maps = _mappings_by_pid(m) if m is not None else {}
        self._map_ts = {pid: [x.ts_ns for x in ms] for pid, ms in self._maps.items()}
        self._binaries: dict[str, dict[str, Any]] = {}
        b = tables.get("binaries")
        if b is not None:
            for r in b.to_pylist():
                self._binaries[r["binary"]] = r
        self._symbols: dict[tuple[str, int], list[Frame]] = {}
        s = tables.get("symbols")
        if s is not None:
            cols = [s.column(n).to_pylist() for n in ("binary", "address", "depth")]
            fn = s.column("function").to_pylist()
            fi = s.column("file").to_pylist()
            ln = s.column("line").to_pylist()
            rows = sorted(zip(cols[0], cols[1], cols[2], fn, fi, ln), key=lambda r: r[:3])
            for key, addr, _depth, f, file, line in rows:
                self._symbols.setdefault((key, int(addr)), []).append(
                    Frame(f, file or "", int(line or 0))
                )
        self._extracted = {k for k, _ in self._symbols} | {
            k for k, r in self._binaries.items() if r.get("symbolizer") is not None
        }
        self._opened: dict[str, tuple[BinarySymbols | None, str | None]] = {}
        self._path_keys: dict[str, str] = {}

    def _mapping(self, pid: int, pc: int, ts_ns: int | None) -> _Map | None:
        maps = self._maps.get(pid)
        if not maps:
            return None
        # The mappings in force at ts_ns: the latest generation read at or before it.
        hi = len(maps) if ts_ns is None else bisect.bisect_right(self._map_ts[pid], ts_ns)
        cands = [m for m in maps[:hi] if m.start <= pc < m.end] or [
            m for m in maps if m.start <= pc < m.end
        ]
        return cands[-1] if cands else None

    def _keyed(self, m: _Map) -> _Map:
        """A mapping the collector could not key: keyed by the file now (when allowed)."""
        key = self._path_keys.get(m.path)
        if key is None:
            key = "path:" + m.path
            if self._open:
                with contextlib.suppress(BinaryError):
                    key = identify(m.path).binary
            self._path_keys[m.path] = key
        return _Map(m.ts_ns, m.start, m.end, m.file_offset, m.path, key)

    def _live(self, key: str, path: str) -> tuple[BinarySymbols | None, str | None]:
        if key not in self._opened:
            if not self._open:
                self._opened[key] = (None, "not in the symbol extract")
            else:
                syms, _, problem = _open_checked(key, [path])
                self._opened[key] = (syms, problem)
        return self._opened[key]

    def frames(self, pid: int, stack_id: int, ts_ns: int | None = None) -> list[NamedFrame]:
        """The named frames of one stack, innermost first (inlined callees expanded), outermost
        last; [] for an unknown stack id."""
        out: list[NamedFrame] = []
        for depth, pc in enumerate(self._frames.get(int(stack_id), ())):
            look = pc - 1 if depth else pc
            m = self._mapping(int(pid), look, ts_ns)
            if m is None:
                out.append(NamedFrame(f"{pc:#x}", "", 0, None, pc, False, "no mapping for PC"))
                continue
            if m.binary is None:
                m = self._keyed(m)
            addr = look - m.start + m.file_offset
            named = self._name(m, addr)
            if isinstance(named, str):
                label = f"{os.path.basename(m.path) or '?'}+{addr:#x}"
                out.append(NamedFrame(label, "", 0, m.binary, addr, False, named))
                continue
            for fr in named:
                out.append(NamedFrame(fr.function, fr.file, fr.line, m.binary, addr, True))
        return out

    def _name(self, m: _Map, addr: int) -> list[Frame] | str:
        key = m.binary
        assert key is not None
        got = self._symbols.get((key, addr))
        if got:
            return got
        if key in self._extracted:
            row = self._binaries.get(key) or {}
            return row.get("problem") or "no symbol at this address"
        syms, problem = self._live(key, m.path)
        if syms is None:
            return problem or "binary unavailable"
        frames = syms.resolve({addr}).get(addr)
        if frames:
            return frames
        return syms.problem or "no symbol at this address"

    def close(self) -> None:
        for syms, _ in self._opened.values():
            if syms is not None:
                syms.close()
        self._opened.clear()
