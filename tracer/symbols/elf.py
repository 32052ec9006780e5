"""The ELF side of symbolisation, on pyelftools: sections, PT_LOAD segments, build ids, the Go
version, and .symtab/.dynsym function symbols (for frames outside Go code).

A binary is read through one read-only mmap; pyelftools parses the headers, and the few large
tables (symbol tables, .gopclntab) are sliced out of the mmap directly (numpy for symbols).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from tracer._errors import TracerError
from tracer.symbols import vdso


class BinaryError(TracerError):
    """A binary cannot be read as an ELF file (the message is the `problem` written down)."""


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD program header."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    offset: int
    size: int
    type: str


_ELF_MAGIC = b"\x7fELF"
_BUILDINFO_MAGIC = b"\xff Go buildinf:"


class ElfImage:
    """One ELF file, mapped read-only. Use as a context manager or call close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == vdso.VDSO:  # no file: this process's own copy of the same image
            own = vdso.image()
            if own is None:
                raise BinaryError("unreadable: this process has no readable vDSO")
            path = own[0]
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise BinaryError(f"unreadable: {e.strerror}") from None
        try:
            st = os.fstat(fd)
            self.size = st.st_size
            self.mtime_ns = st.st_mtime_ns
            if self.size < 64:
                raise BinaryError("not an ELF file (too short)")
            self.data: Any = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        except OSError as e:
            raise BinaryError(f"unreadable: {e.strerror}") from None
        finally:
            os.close(fd)
        if self.data[:4] != _ELF_MAGIC:
            self.data.close()
            raise BinaryError("not an ELF file")
        try:
            self._parse()
        except (ELFError, struct.error, ValueError, IndexError) as e:
            self.data.close()
            raise BinaryError(f"corrupt or truncated ELF ({e})") from None

    def _parse(self) -> None:
        stream: Any = _MmapStream(self.data)
        elf = ELFFile(stream)
        self.elfclass: int = elf.elfclass
        self.little_endian: bool = elf.little_endian
        self.ptr_size = 8 if self.elfclass == 64 else 4
        self.arch: str = elf.get_machine_arch()
        self.elf_type: str = elf.header["e_type"]
        self.segments: list[Segment] = []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                self.segments.append(
                    Segment(
                        seg["p_vaddr"],
                        seg["p_offset"],
                        seg["p_filesz"],
                        seg["p_memsz"],
                        seg["p_flags"],
                    )
                )
        self.sections: dict[str, Section] = {}
        for sec in elf.iter_sections():
            if sec.name and sec.name not in self.sections:
                self.sections[sec.name] = Section(
                    sec.name, sec["sh_addr"], sec["sh_offset"], sec["sh_size"], sec["sh_type"]
                )
        for s in self.sections.values():
            if s.type != "SHT_NOBITS" and s.offset + s.size > self.size:
                raise ValueError(f"section {s.name} extends past the end of the file")
        self._endian = "<" if self.little_endian else ">"
        self._ptr_fmt = self._endian + ("Q" if self.ptr_size == 8 else "I")

    def close(self) -> None:
        self.data.close()

    def __enter__(self) -> ElfImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- addresses -------------------------------------------------------------------------

    def offset_to_vaddr(self, file_offset: int) -> int | None:
        """The ELF virtual address of a file offset (the PT_LOAD segment holding it)."""
        for s in self.segments:
            if s.offset <= file_offset < s.offset + s.filesz:
                return s.vaddr + (file_offset - s.offset)
        return None

    def vaddr_to_offset(self, vaddr: int) -> int | None:
        for s in self.segments:
            if s.vaddr <= vaddr < s.vaddr + s.filesz:
                return s.offset + (vaddr - s.vaddr)
        return None

    def read_vaddr(self, vaddr: int, n: int) -> bytes | None:
        off = self.vaddr_to_offset(vaddr)
        if off is None or off + n > self.size:
            return None
        return bytes(self.data[off : off + n])

    def read_ptr(self, vaddr: int) -> int | None:
        b = self.read_vaddr(vaddr, self.ptr_size)
        if b is None:
            return None
        return int(struct.unpack(self._ptr_fmt, b)[0])

    def section_bytes(self, name: str) -> memoryview | None:
        s = self.sections.get(name)
        if s is None or s.type == "SHT_NOBITS":
            return None
        return memoryview(self.data)[s.offset : s.offset + s.size]

    # --- identity --------------------------------------------------------------------------

    def _notes(self, name: str) -> list[tuple[bytes, int, bytes]]:
        """(owner, type, desc) of every note in a SHT_NOTE section; a corrupt note ends it."""
        raw = self.section_bytes(name)
        out: list[tuple[bytes, int, bytes]] = []
        if raw is None:
            return out
        b = bytes(raw)
        pos = 0
        while pos + 12 <= len(b):
            namesz, descsz, ntype = struct.unpack_from(self._endian + "III", b, pos)
            if pos + 12 + namesz + descsz > len(b):
                break
            pos += 12
            owner = b[pos : pos + namesz].rstrip(b"\0")
            pos += (namesz + 3) & ~3
            desc = b[pos : pos + descsz]
            pos += (descsz + 3) & ~3
            out.append((owner, ntype, desc))
        return out

    def gnu_build_id(self) -> str | None:
        """NT_GNU_BUILD_ID (type 3, owner "GNU") as hex."""
        for sec in self.sections.values():
            if sec.type != "SHT_NOTE":
                continue
            for owner, ntype, desc in self._notes(sec.name):
                if owner == b"GNU" and ntype == 3 and desc:
                    return desc.hex()
        return None

    def go_build_id(self) -> str | None:
        """The Go build id note (.note.go.buildid: owner "Go", type 4)."""
        for owner, ntype, desc in self._notes(".note.go.buildid"):
            if owner == b"Go" and ntype == 4 and desc:
                return desc.decode("utf-8", "replace")
        return None

    def go_version(self) -> str | None:
        try:
            return self._go_version()
        except (struct.error, ValueError, IndexError):
            return None

    def _go_version(self) -> str | None:
        """The Go version from .go.buildinfo ("\\xff Go buildinf:" header): since Go 1.18 the
        version string is inline after the 32-byte header (flag bit 2), before it the header
        holds a pointer to a Go string header (pointer, length)."""
        raw = self.section_bytes(".go.buildinfo")
        if raw is None:
            # No section headers: the header is 16-byte aligned in a writable segment.
            idx = self.data.find(_BUILDINFO_MAGIC)
            if idx < 0:
                return None
            raw = memoryview(self.data)[idx : idx + 4096]
        b = bytes(raw[:64])
        if not b.startswith(_BUILDINFO_MAGIC) or len(b) < 32:
            return None
        ptr_size = b[14]
        flags = b[15]
        if flags & 2:
            n, i = _uvarint(bytes(raw[32 : 32 + 10]), 0)
            v = bytes(raw[32 + i : 32 + i + n])
            return v.decode("utf-8", "replace") or None
        if ptr_size not in (4, 8):
            return None
        fmt = ("<" if not flags & 1 else ">") + ("Q" if ptr_size == 8 else "I")
        (str_hdr,) = struct.unpack_from(fmt, b, 16)
        hdr = self.read_vaddr(str_hdr, 2 * ptr_size)
        if hdr is None:
            return None
        ptr, n = struct.unpack(fmt + fmt[1], hdr)
        if not 0 < n < 128:
            return None
        v2 = self.read_vaddr(ptr, n)
        return v2.decode("utf-8", "replace") if v2 else None

    # --- ELF symbols -----------------------------------------------------------------------

    def function_symbols(self, table: str) -> FunctionSymbols | None:
        """STT_FUNC symbols of .symtab or .dynsym, sorted by address (None when absent/empty)."""
        sec = self.sections.get(table)
        if sec is None or sec.type not in ("SHT_SYMTAB", "SHT_DYNSYM"):
            return None
        strtab_name = ".strtab" if table == ".symtab" else ".dynstr"
        strtab = self.section_bytes(strtab_name)
        raw = self.section_bytes(table)
        if raw is None or strtab is None:
            return None
        e = self._endian
        if self.elfclass == 64:
            dt = np.dtype(
                [
                    ("name", e + "u4"),
                    ("info", "u1"),
                    ("other", "u1"),
                    ("shndx", e + "u2"),
                    ("value", e + "u8"),
                    ("size", e + "u8"),
                ]
            )
        else:
            dt = np.dtype(
                [
                    ("name", e + "u4"),
                    ("value", e + "u4"),
                    ("size", e + "u4"),
                    ("info", "u1"),
                    ("other", "u1"),
                    ("shndx", e + "u2"),
                ]
            )
        n = len(raw) // dt.itemsize
        syms = np.frombuffer(raw, dtype=dt, count=n)
        # STT_FUNC (2) or STT_GNU_IFUNC (10), defined (shndx != 0), non-zero address.
        kind = syms["info"] & 0xF
        keep = ((kind == 2) | (kind == 10)) & (syms["shndx"] != 0) & (syms["value"] != 0)
        syms = syms[keep]
        if len(syms) == 0:
            return None
        order = np.argsort(syms["value"], kind="stable")
        syms = syms[order]
        return FunctionSymbols(
            syms["value"].astype(np.uint64),
            syms["size"].astype(np.uint64),
            syms["name"].astype(np.int64),
            bytes(strtab),
        )


    # --- PLT stubs -------------------------------------------------------------------------

    def plt_stubs(self) -> PltStubs | None:
        """The lazy-binding PLT stubs, named `symbol@plt` as objdump names them (None when the
        binary has none, or its architecture's PLT is not one read here).

        A dynamically linked program calls a libc function through a 16-byte stub in .plt (or
        .plt.sec when built for CET/IBT); a sample taken in a stub (cgo's calls into libc from
        Go's runtime, the dynamic loader's first resolution) has no symbol of its own. Each stub
        jumps through one GOT slot, and the .rela.plt relocation of that slot names the
        function (its .dynsym symbol, or `*ABS*+0xADDEND` for an IRELATIVE one, as objdump).
        On x86-64 the slot is read from the stub's own `jmp *disp32(%rip)` (.rela.plt's order
        is not the stubs' order in every binary: glibc's own differs); on aarch64 stub i is
        relocation i after a 32-byte header.
        """
        rela = self.section_bytes(".rela.plt")
        dynsym = self.section_bytes(".dynsym")
        dynstr = self.section_bytes(".dynstr")
        if rela is None or dynsym is None or dynstr is None or self.elfclass != 64:
            return None
        e = self._endian
        # Elf64_Rela: r_offset, r_info (symbol index in its high 32 bits), r_addend
        relocs = np.frombuffer(rela, dtype=np.dtype(e + "u8"), count=len(rela) // 24 * 3)
        # Elf64_Sym is 24 bytes; st_name is its first 4
        sym_names = np.frombuffer(dynsym, dtype=np.dtype(e + "u4"), count=len(dynsym) // 4)[::6]
        strtab = bytes(dynstr)
        got_name: dict[int, str] = {}
        for r_offset, r_info, r_addend in relocs.reshape(-1, 3).tolist():
            i = r_info >> 32
            if 0 < i < len(sym_names):
                off = int(sym_names[i])
                end = strtab.find(b"\0", off)
                name = strtab[off : end if end >= 0 else None].decode("utf-8", "replace")
            else:
                name = f"*ABS*+{r_addend:#x}"
            got_name[r_offset] = name
        names: list[str] = []
        if self.arch == "x64":
            sec, first = self.sections.get(".plt.sec"), 0
            if sec is None:
                sec, first = self.sections.get(".plt"), 16
            raw = self.section_bytes(sec.name) if sec is not None else None
            if sec is None or raw is None:
                return None
            for at in range(first, sec.size - 15, 16):
                stub = bytes(raw[at : at + 16])
                j = stub.find(b"\xff\x25")
                if j < 0 or j + 6 > 16:
                    names.append("")
                    continue
                (disp,) = struct.unpack_from("<i", stub, j + 2)
                names.append(got_name.get(sec.addr + at + j + 6 + disp, ""))
        elif self.arch == "AArch64":
            sec, first = self.sections.get(".plt"), 32
            if sec is None:
                return None
            ordered = list(got_name.values())
            names = ordered[: max(0, (sec.size - first) // 16)]
        else:
            return None
        if not any(names):
            return None
        return PltStubs(sec.addr + first, len(names), names)


class PltStubs:
    """PLT stubs at start + 16*i, named `names[i]@plt`."""

    def __init__(self, start: int, count: int, names: list[str]) -> None:
        self.start = start
        self.end = start + 16 * count
        self.names = names

    def lookup(self, vaddr: int) -> str | None:
        if not self.start <= vaddr < self.end:
            return None
        name = self.names[(vaddr - self.start) // 16]
        return f"{name}@plt" if name else None


class FunctionSymbols:
    """Sorted function symbols: lookup(address) -> name, by binary search over start addresses."""

    def __init__(self, starts: Any, sizes: Any, name_offs: Any, strtab: bytes) -> None:
        self.starts = starts
        self.sizes = sizes
        self.name_offs = name_offs
        self.strtab = strtab

    def lookup(self, address: int) -> str | None:
        i = int(np.searchsorted(self.starts, np.uint64(address), side="right")) - 1
        # Several symbols may share an address (aliases): take the one with a size covering
        # it. A symbol without a size (hand-written assembly, crt stubs) runs to the next one.
        while i >= 0:
            start = int(self.starts[i])
            size = int(self.sizes[i])
            if size == 0:
                nxt = np.searchsorted(self.starts, np.uint64(start), side="right")
                end = int(self.starts[nxt]) if nxt < len(self.starts) else start + 1
            else:
                end = start + size
            if start <= address < end:
                off = int(self.name_offs[i])
                stop = self.strtab.find(b"\0", off)
                return self.strtab[off:stop].decode("utf-8", "replace") or None
            if i > 0 and int(self.starts[i - 1]) == start:
                i -= 1
                continue
            return None
        return None


class _MmapStream:
    """A minimal seekable file over an mmap for pyelftools (which wants read/seek/tell)."""

    def __init__(self, data: Any) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        b = bytes(self._data[self._pos : end])
        self._pos += len(b)
        return b

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = pos
        elif whence == 1:
            self._pos += pos
        else:
            self._pos = len(self._data) + pos
        return self._pos

    def tell(self) -> int:
        return self._pos


def _uvarint(b: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at b[pos:]: (value, new position)."""
    v = 0
    shift = 0
    while pos < len(b):
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            break
        shift += 7
    return v, pos
