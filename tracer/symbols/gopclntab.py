"""A small reader of Go's `.gopclntab`: PC -> function, file, line, with inlined frames.

Why our own: no kept Python library reads it, and it is the only symbol table left in a Go
binary built with ``-s -w`` (k3s, Debian's etcd and containerd): the Go runtime needs it for
tracebacks, so the linker always writes it. Facts from Go's runtime/symtab.go, debug/gosym and
the OpenTelemetry eBPF profiler's doc/gopclntab.md; checked against ``go tool addr2line``
(tests/unit/test_symbols_addr2line.py).

Layout (all offsets relative to the table start, the "pcHeader"):

- header: magic u32, two zero bytes, minLC (PC quantum: 1 on x86, 4 on arm64), ptrSize. The
  magic names the layout: 0xfffffffb Go 1.2-1.15, 0xfffffffa Go 1.16-1.17, 0xfffffff0 Go
  1.18-1.19, 0xfffffff1 Go 1.20+.
  Go 1.2: nfunc (uintptr), then the function table inline.
  Go 1.16: nfunc, nfiles, funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset.
  Go 1.18+: nfunc, nfiles, textStart, then the same five offsets (each a uintptr).
- function table (at pclnOffset; 1.2: right after the header): nfunc+1 pairs (entry PC,
  offset of the function's `_func` record), sorted by PC; the last entry is the end PC. Go
  1.18+ stores both as uint32 and the entry relative to the start of text. A PC's function is
  a binary search over the entry PCs.
- `_func`: entry (uintptr; uint32 offset since 1.18), then uint32 fields nameOff, args,
  deferreturn, pcsp, pcfile, pcln, npcdata, cuOffset (1.16+), startLine (1.20+), then 4 bytes
  funcID, flag, pad, nfuncdata; then npcdata uint32 offsets of PCDATA tables, then nfuncdata
  FUNCDATA pointers (uintptr addresses before 1.18, 8-aligned; since 1.18 uint32 offsets from
  moduledata.gofunc, ~0 = none).
- pcvalue tables (pcfile, pcln, PCDATA; at pctabOffset + offset): pairs of varints (zig-zag
  value delta, PC delta / quantum), the value starting at -1; a zero value delta after the
  first pair ends the table. The value at a PC is the one whose range ends past it.
- files: pcfile gives a per-compilation-unit file number; cutab[cuOffset + n] (uint32) is the
  offset of the NUL-terminated name in the file table (Go 1.2: a global table of uint32
  offsets). Names are NUL-terminated at funcnameOffset + nameOff (1.2: table start + nameOff).
- inlining: PCDATA 2 (InlTreeIndex) at a PC is the index of the innermost inlined call in the
  function's FUNCDATA 3 (InlTree), or -1. An entry is 20 bytes before Go 1.20 (parent i16,
  funcID u8, pad, file i32, line i32, nameOff i32, parentPc i32) and 16 bytes since (funcID
  u8, pad[3], nameOff i32, parentPc i32, startLine i32). parentPc is an offset from the
  function entry of an instruction whose position is the call site: the caller's file:line
  and its own InlTreeIndex are read there, up to the physical function.
- gofunc (Go 1.18+, where FUNCDATA points): read from `runtime.firstmoduledata`, found as
  the word in a writable segment that points at the table, followed by a word pointing at
  the function name table; gofunc is word 38 of it (Go 1.18/1.19), 40 (Go 1.20+, after
  covctrs/ecovctrs) or 43 (Go 1.27: typedesclen, itaboffset, itabsize), told apart by where
  rodata and gofunc point. Without it, frames come out without their inlined callees.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tracer.symbols.elf import BinaryError, ElfImage


class Frame(NamedTuple):
    """One source frame: the function (package-path qualified), its file and line."""

    function: str
    file: str
    line: int


MAGICS = {0xFFFFFFFB: "1.2", 0xFFFFFFFA: "1.16", 0xFFFFFFF0: "1.18", 0xFFFFFFF1: "1.20"}
_PCDATA_INLTREE_INDEX = 2
_FUNCDATA_INLTREE = 3


@dataclass
class _Func:
    entry: int
    name_off: int
    pcfile: int
    pcln: int
    cu_off: int
    inl_index_table: int  # PCDATA offset, 0 = none
    inl_tree: int  # vaddr of the inline tree, 0 = none


@dataclass
class _PcTable:
    """A pcvalue table decoded so far: run i covers PCs below ends[i] with vals[i]; pos, val
    and pc are where decoding resumes."""

    ends: list[int]
    vals: list[int]
    pos: int
    val: int
    pc: int
    done: bool


class GoTable:
    """The parsed `.gopclntab` of one binary. Build with :meth:`from_elf`."""

    def __init__(self, img: ElfImage, start: int, end: int, vaddr: int) -> None:
        self.img = img
        self.vaddr = vaddr
        self.data: bytes = bytes(img.data[start:end])
        d = self.data
        if len(d) < 16:
            raise BinaryError(".gopclntab truncated")
        endian = "<" if img.little_endian else ">"
        (magic,) = struct.unpack_from(endian + "I", d, 0)
        if magic not in MAGICS:
            raise BinaryError(f".gopclntab has an unknown magic {magic:#x}")
        self.layout = MAGICS[magic]
        self.quantum = d[6]
        self.ptr_size = p = d[7]
        if p not in (4, 8) or self.quantum not in (1, 2, 4):
            raise BinaryError(".gopclntab header is corrupt")
        self._u32 = struct.Struct(endian + "I")
        self._i32 = struct.Struct(endian + "i")
        self._ptr = struct.Struct(endian + ("Q" if p == 8 else "I"))
        uptr = self._ptr.unpack_from
        self.nfunc = nfunc = uptr(d, 8)[0]
        text_start = 0
        if self.layout == "1.2":
            self.funcname_off = 0
            self.cu_off = 0
            self.pctab_off = 0
            self.pcln_off = 0
            ftab = 8 + p
            ftab_end = ftab + nfunc * 2 * p
            self.filetab_off = self._u32.unpack_from(d, ftab_end + p)[0]
        else:
            hdr = [uptr(d, 8 + i * p)[0] for i in range(8)]
            if self.layout == "1.16":
                (_, _, self.funcname_off, self.cu_off, self.filetab_off, self.pctab_off,
                 self.pcln_off) = hdr[:7]  # fmt: skip
            else:
                (_, _, text_start, self.funcname_off, self.cu_off, self.filetab_off,
                 self.pctab_off, self.pcln_off) = hdr  # fmt: skip
            ftab = self.pcln_off
        if not 0 < nfunc < 10_000_000:
            raise BinaryError(".gopclntab header is corrupt (function count)")
        wide = self.layout in ("1.2", "1.16")
        word = np.dtype(endian + ("u8" if (wide and p == 8) else "u4"))
        need = ftab + (nfunc + 1) * 2 * word.itemsize
        if need > len(d):
            raise BinaryError(".gopclntab truncated (function table)")
        pairs = np.frombuffer(d, dtype=word, count=(nfunc + 1) * 2, offset=ftab)
        entries = pairs[0::2].astype(np.uint64)
        self.funcoffs = pairs[1::2].astype(np.int64)
        # gofunc and, since Go 1.18, the text start the entry offsets are relative to: from
        # runtime.firstmoduledata (textStart in the header is unused since Go 1.20).
        self.gofunc = 0
        if not wide:
            md_text, self.gofunc = self._moduledata()
            base = md_text or text_start or _text_addr(img)
            entries = entries + np.uint64(base)
        self.entries = entries[:-1]
        self.end_pc = int(entries[-1])
        self._entries_list: list[int] = self.entries.tolist()
        self._funcs: dict[int, _Func] = {}
        self._tables: dict[tuple[int, int], _PcTable] = {}
        self._strings: dict[int, str] = {}
        self._inl: dict[tuple[int, int], tuple[int, int]] = {}
        go_version = img.go_version() if self.layout == "1.2" else None
        # Go 1.2-1.11 ended _func with nfuncdata as an int32; 1.12-1.15 with funcID, pad,
        # nfuncdata (u8): only trust the inline tree in the 1.2 layout when the version says.
        self._old_inline_ok = go_version is not None and _minor(go_version) >= 12

    # --- the table's own structure ----------------------------------------------------------

    @classmethod
    def from_elf(cls, img: ElfImage) -> GoTable:
        """Find the table by its section header, else by its magic in a read-only segment."""
        for name, sec in img.sections.items():
            if name.endswith(".gopclntab") and sec.type != "SHT_NOBITS" and sec.size:
                return cls(img, sec.offset, sec.offset + sec.size, sec.addr)
        endian = "<" if img.little_endian else ">"
        for seg in img.segments:
            if seg.flags & 1:  # PF_X: code, not data
                continue
            lo, hi = seg.offset, seg.offset + seg.filesz
            for magic in MAGICS:
                needle = struct.pack(endian + "I", magic) + b"\0\0"
                pos = img.data.find(needle, lo, hi)
                while pos >= 0:
                    q, p = img.data[pos + 6], img.data[pos + 7]
                    if q in (1, 2, 4) and p == img.ptr_size:
                        try:
                            t = cls(img, pos, hi, seg.vaddr + pos - seg.offset)
                            if t.entries.size and bool(np.all(np.diff(t.entries) >= 0)):
                                return t
                        except (BinaryError, struct.error, ValueError):
                            pass
                    pos = img.data.find(needle, pos + 1, hi)
        raise BinaryError("no .gopclntab (not a Go binary, or an unknown Go layout)")

    def _moduledata(self) -> tuple[int, int]:
        """(text, gofunc) from runtime.firstmoduledata, or (0, 0) when it cannot be found."""
        img = self.img
        p = self.ptr_size
        me = self._ptr.pack(self.vaddr)
        names = self._ptr.pack(self.vaddr + self.funcname_off)
        # The word index of gofunc: 38 in Go 1.18/1.19; 40 in Go 1.20+ (covctrs, ecovctrs);
        # 43 since types gained typedesclen and itaboffset/itabsize (Go 1.27). The word before
        # is rodata: both must point into a read-only data segment, rodata first.
        candidates = (38,) if self.layout == "1.18" else (40, 43)
        for seg in img.segments:
            if not seg.flags & 2:  # PF_W: moduledata lives in .noptrdata
                continue
            lo, hi = seg.offset, seg.offset + seg.filesz
            pos = img.data.find(me, lo, hi)
            while pos >= 0:
                if pos % p == 0 and img.data[pos + p : pos + 2 * p] == names:
                    words = img.data[pos : pos + 48 * p]
                    if len(words) == 48 * p:
                        text = self._ptr.unpack_from(words, 22 * p)[0]
                        for k in candidates:
                            rodata = self._ptr.unpack_from(words, (k - 1) * p)[0]
                            gofunc = self._ptr.unpack_from(words, k * p)[0]
                            ro = self._in_rodata(rodata) and self._in_rodata(gofunc)
                            if ro and rodata <= gofunc:
                                return int(text), int(gofunc)
                        return int(text), 0
                pos = img.data.find(me, pos + 1, hi)
        return 0, 0

    def _in_rodata(self, vaddr: int) -> bool:
        return any(
            s.vaddr <= vaddr < s.vaddr + s.filesz and not s.flags & 3 for s in self.img.segments
        )

    def _string(self, off: int) -> str:
        s = self._strings.get(off)
        if s is None:
            end = self.data.find(b"\0", off)
            s = self.data[off : end if end >= 0 else len(self.data)].decode("utf-8", "replace")
            self._strings[off] = s
        return s

    def _func(self, i: int) -> _Func:
        f = self._funcs.get(i)
        if f is not None:
            return f
        d = self.data
        u32 = self._u32.unpack_from
        base = self.pcln_off + int(self.funcoffs[i])
        wide = self.layout in ("1.2", "1.16")
        sz0 = self.ptr_size if wide else 4
        nfields = {"1.2": 7, "1.16": 8, "1.18": 8, "1.20": 9}[self.layout]
        name_off, _, _, _, pcfile, pcln, npcdata = struct.unpack_from(
            self._u32.format[0] + "7I", d, base + sz0
        )
        cu_off = u32(d, base + sz0 + 28)[0] if self.layout != "1.2" else 0
        fixed = sz0 + nfields * 4 + 4
        nfuncdata = d[base + fixed - 1]
        inl_index = 0
        if npcdata > _PCDATA_INLTREE_INDEX:
            inl_index = u32(d, base + fixed + 4 * _PCDATA_INLTREE_INDEX)[0]
        inl_tree = 0
        old_ok = self.layout != "1.2" or self._old_inline_ok
        if inl_index and nfuncdata > _FUNCDATA_INLTREE and old_ok:
            fd = base + fixed + 4 * npcdata
            if wide:
                p = self.ptr_size
                if (self.vaddr + fd) % p:
                    fd += p - (self.vaddr + fd) % p
                inl_tree = self._ptr.unpack_from(d, fd + p * _FUNCDATA_INLTREE)[0]
            elif self.gofunc:
                v = u32(d, fd + 4 * _FUNCDATA_INLTREE)[0]
                if v != 0xFFFFFFFF:
                    inl_tree = self.gofunc + v
        entry = self._entries_list[i]
        f = _Func(entry, name_off, pcfile, pcln, cu_off, inl_index if inl_tree else 0, inl_tree)
        self._funcs[i] = f
        return f

    def _table(self, off: int, entry: int, upto: int | None = None) -> _PcTable:
        """A pcvalue table, decoded lazily: runs are decoded until one ends past `upto` (the
        whole table when None), and decoding resumes there on the next lookup."""
        key = (off, entry)
        t = self._tables.get(key)
        if t is None:
            t = _PcTable([], [], self.pctab_off + off, -1, entry, False)
            self._tables[key] = t
        if t.done or (upto is not None and t.ends and t.ends[-1] > upto):
            return t
        d = self.data
        pos, val, pc = t.pos, t.val, t.pc
        ends, vals = t.ends, t.vals
        q = self.quantum
        n = len(d)
        while pos < n:
            c = d[pos]
            pos += 1
            uv = c & 0x7F
            shift = 7
            while c >= 0x80:
                c = d[pos]
                pos += 1
                uv |= (c & 0x7F) << shift
                shift += 7
            if uv == 0 and ends:
                t.done = True
                break
            val += -((uv >> 1) + 1) if uv & 1 else uv >> 1
            c = d[pos]
            pos += 1
            pd = c & 0x7F
            shift = 7
            while c >= 0x80:
                c = d[pos]
                pos += 1
                pd |= (c & 0x7F) << shift
                shift += 7
            pc += pd * q
            ends.append(pc)
            vals.append(val)
            if upto is not None and pc > upto:
                break
        else:
            t.done = True
        t.pos, t.val, t.pc = pos, val, pc
        return t

    def _value(self, off: int, entry: int, pc: int) -> int | None:
        if off == 0:
            return None
        t = self._table(off, entry, pc)
        i = bisect_right(t.ends, pc)
        return t.vals[i] if i < len(t.vals) else None

    def _file(self, f: _Func, pc: int) -> str:
        fno = self._value(f.pcfile, f.entry, pc)
        if fno is None or fno < 0:
            return "?"
        d = self.data
        if self.layout == "1.2":
            at = self.filetab_off + 4 * fno
            if at + 4 > len(d):
                return "?"
            return self._string(self._u32.unpack_from(d, at)[0])
        at = self.cu_off + 4 * (f.cu_off + fno)
        if at + 4 > len(d):
            return "?"
        off = self._u32.unpack_from(d, at)[0]
        if off == 0xFFFFFFFF:
            return "?"
        return self._string(self.filetab_off + off)

    def _inlined_call(self, f: _Func, ix: int) -> tuple[int, int] | None:
        """(nameOff, parentPc) of inline tree entry ix."""
        key = (f.inl_tree, ix)
        c = self._inl.get(key)
        if c is not None:
            return c
        modern = self.layout == "1.20"
        size = 16 if modern else 20
        raw = self.img.read_vaddr(f.inl_tree + ix * size, size)
        if raw is None:
            return None
        fmt = self._u32.format[0]
        if modern:
            name_off, parent_pc = struct.unpack_from(fmt + "ii", raw, 4)
        else:
            name_off, parent_pc = struct.unpack_from(fmt + "ii", raw, 12)
        c = (name_off, parent_pc)
        self._inl[key] = c
        return c

    def _name(self, name_off: int) -> str:
        return self._string(self.funcname_off + name_off)

    # --- lookups -----------------------------------------------------------------------------

    def func_index(self, pc: int) -> int | None:
        i = bisect_right(self._entries_list, pc) - 1
        if i < 0 or pc >= self.end_pc:
            return None
        return i

    def resolve_one(self, pc: int) -> list[Frame]:
        """Frames at one ELF virtual address, innermost (most inlined) first; [] if none."""
        i = self.func_index(pc)
        if i is None:
            return []
        f = self._func(i)
        line = self._value(f.pcln, f.entry, pc)
        if line is None:
            return []  # past the function's end: a gap (C code, padding)
        file = self._file(f, pc)
        frames: list[Frame] = []
        at = pc
        if f.inl_tree:
            ix = self._value(f.inl_index_table, f.entry, at)
            seen = 0
            while ix is not None and ix >= 0 and seen < 64:
                call = self._inlined_call(f, ix)
                if call is None:
                    break
                frames.append(Frame(self._name(call[0]), file, line))
                at = f.entry + call[1]
                line = self._value(f.pcln, f.entry, at) or 0
                file = self._file(f, at)
                ix = self._value(f.inl_index_table, f.entry, at)
                seen += 1
        frames.append(Frame(self._name(f.name_off), file, line))
        return frames

    def function_before(self, pc: int) -> str | None:
        """The function whose entry is the last one at or before pc (inside the table's
        range), whether or not its code reaches pc: padding after a function is its, as
        `go tool addr2line` names it; None outside the table."""
        i = self.func_index(pc)
        return None if i is None else self.function_name(i)

    def function_span(self, i: int) -> tuple[int, int]:
        """(entry PC, end of its code) of function i: the end is where its line table stops
        (alignment padding up to the next entry belongs to no code)."""
        f = self._func(i)
        if f.pcln == 0:  # a marker without code (go:textfipsstart)
            return f.entry, f.entry
        ends = self._table(f.pcln, f.entry).ends
        return f.entry, (ends[-1] if ends else f.entry)

    def function_name(self, i: int) -> str:
        return self._name(self._func(i).name_off)


def _text_addr(img: ElfImage) -> int:
    s = img.sections.get(".text")
    return s.addr if s else 0


def _minor(go_version: str) -> int:
    """12 for "go1.12.5", 0 when unreadable."""
    v = go_version.removeprefix("go").split(".")
    try:
        return int(v[1]) if len(v) > 1 else 0
    except ValueError:
        return 0
