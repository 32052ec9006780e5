"""One binary: its identity (the BINARIES row) and its symboliser (.gopclntab, else .symtab,
else .dynsym, else none)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from tracer.symbols.elf import BinaryError, ElfImage, FunctionSymbols, PltStubs
from tracer.symbols.gopclntab import Frame, GoTable

_MIB = 1 << 20


@dataclass(frozen=True)
class Identity:
    """What identifies a binary file: the BINARIES columns other than symbolizer/problem."""

    binary: str
    path: str
    gnu_build_id: str | None
    go_build_id: str | None
    go_version: str | None
    size: int
    mtime_ns: int
    arch: str | None


def file_key(path: str) -> str:
    """ "file:<sha256 of the first MiB, the last MiB and the size in decimal>"."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(f.read(_MIB))
        if size > _MIB:
            f.seek(max(_MIB, size - _MIB))
            h.update(f.read(_MIB))
    h.update(str(size).encode())
    return "file:" + h.hexdigest()


def _key(img: ElfImage | None, path: str, gnu: str | None, go: str | None) -> str:
    if gnu:
        return "gnu:" + gnu
    if go:
        return "go:" + go
    return file_key(path)


def identify(path: str) -> Identity:
    """The identity of the file at path now (the key `mappings`, `binaries` and `symbols`
    use). Raises BinaryError only when the file cannot be read at all; a non-ELF file is
    identified by its content hash."""
    try:
        img = ElfImage(path)
    except BinaryError:
        try:
            st = os.stat(path)
            key = file_key(path)
        except OSError as e:
            raise BinaryError(f"unreadable: {e.strerror}") from None
        return Identity(key, path, None, None, None, st.st_size, st.st_mtime_ns, None)
    with img:
        return _identity(img)


def _identity(img: ElfImage) -> Identity:
    gnu = img.gnu_build_id()
    go = img.go_build_id()
    return Identity(
        _key(img, img.path, gnu, go),
        img.path,
        gnu,
        go,
        img.go_version(),
        img.size,
        img.mtime_ns,
        img.arch,
    )


class BinarySymbols:
    """An opened binary that resolves file-offset addresses to frames.

    `problem` says why symbols are partial or missing (None when all is well); `symbolizer`
    is "gopclntab" | "symtab" | "dynsym" | "none", as in BINARIES.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity: Identity | None = None
        self.problem: str | None = None
        self.symbolizer = "none"
        self._img: ElfImage | None = None
        self._go: GoTable | None = None
        self._elf_syms: FunctionSymbols | None = None
        self._elf_syms_loaded = False
        self._plt_loaded = False
        self._plt: PltStubs | None = None
        try:
            self._img = ElfImage(path)
        except BinaryError as e:
            self.problem = str(e)
            with contextlib.suppress(BinaryError):
                self.identity = identify(path)
            return
        img = self._img
        self.identity = _identity(img)
        try:
            self._go = GoTable.from_elf(img)
            self.symbolizer = "gopclntab"
            if self._go.layout != "1.2" and not self._go.gofunc:
                self.problem = "inlined frames unavailable (Go moduledata not found)"
        except (BinaryError, struct.error, ValueError, IndexError) as e:
            go_problem = (
                str(e) if isinstance(e, BinaryError) else f"corrupt .gopclntab ({_short(e)})"
            )
            self._load_elf_syms()
            if self._elf_syms is None:
                self.problem = f"{go_problem}; no .symtab or .dynsym function symbols"
            elif img.go_build_id() is not None:
                self.problem = go_problem

    def _load_elf_syms(self) -> None:
        if self._elf_syms_loaded or self._img is None:
            return
        self._elf_syms_loaded = True
        for table, name in ((".symtab", "symtab"), (".dynsym", "dynsym")):
            syms = self._img.function_symbols(table)
            if syms is not None:
                self._elf_syms = syms
                if self.symbolizer == "none":
                    self.symbolizer = name
                return

    def close(self) -> None:
        if self._img is not None:
            self._img.close()
            self._img = None

    def __enter__(self) -> BinarySymbols:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def vaddr(self, file_address: int) -> int | None:
        """The ELF virtual address of a file-offset address (pc - start + file_offset)."""
        return self._img.offset_to_vaddr(file_address) if self._img is not None else None

    def resolve_vaddr(self, vaddr: int) -> list[Frame]:
        """Frames at an ELF virtual address, innermost first ([] when nothing names it)."""
        if self._go is not None:
            try:
                frames = self._go.resolve_one(vaddr)
            except (struct.error, ValueError, IndexError) as e:
                # a table corrupt past its header: say so once, name nothing from it
                self.problem = self.problem or f"corrupt .gopclntab ({_short(e)})"
                frames = []
            if frames:
                return frames
            self._load_elf_syms()  # C code in a cgo binary: .symtab/.dynsym if any
        # a PLT stub before the ELF symbols: a size-less symbol before .plt (crt's _init) would
        # otherwise claim the stubs as its own
        plt = self._plt_stubs()
        name = plt.lookup(vaddr) if plt is not None else None
        if name is None and self._elf_syms is not None:
            name = self._elf_syms.lookup(vaddr)
        if name is None and self._go is not None:
            # alignment padding after a Go function's code (no line there) that no ELF symbol
            # claims: the function before it, line unknown, as `go tool addr2line` answers
            # ("runtime.cgoSigtramp :-1"). A frame's PC lands there when its return address is
            # a signal frame's restorer, the next function's entry (runtime.sigreturn), and
            # the walk takes PC - 1 as the call site
            try:
                name = self._go.function_before(vaddr)
            except (struct.error, ValueError, IndexError) as e:
                self.problem = self.problem or f"corrupt .gopclntab ({_short(e)})"
        return [Frame(name, "", 0)] if name else []

    def _plt_stubs(self) -> PltStubs | None:
        if not self._plt_loaded and self._img is not None:
            self._plt_loaded = True
            try:
                self._plt = self._img.plt_stubs()
            except (ValueError, IndexError):  # a corrupt .rela.plt names no stub
                self._plt = None
        return self._plt

    def resolve(self, file_addresses: Iterable[int]) -> dict[int, list[Frame]]:
        """{file-offset address: frames innermost first}, each distinct address resolved once;
        addresses nothing names are left out."""
        out: dict[int, list[Frame]] = {}
        if self._img is None:
            return out
        for a in sorted(set(file_addresses)):
            v = self.vaddr(a)
            if v is None:
                continue
            frames = self.resolve_vaddr(v)
            if frames:
                out[a] = frames
        return out


def _short(e: Exception) -> str:
    """One short clause for a parse error deep in a table (struct's messages run long)."""
    if isinstance(e, (struct.error, IndexError)):
        return "an offset points outside the table"
    return str(e)[:80]
