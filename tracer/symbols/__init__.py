"""Symbols of recorded user stacks: ELF + Go `.gopclntab` -> function, file, line (inlined
frames included), and the component map. A floor below both the collector (which writes the
symbol extract at record stop) and the analyzer (which names stacks later); it imports
neither. docs/symbols.md explains it for users.

The API (everything else is internal):

Record side (collector, at stop)
    ``stack_pcs(stacks, samples) -> set[(pid, pc)]``: the PCs to resolve (frame 0 at its PC,
    callers at PC - 1, inside the call instruction).
    ``extract(mappings, pcs) -> (binaries, symbols)``: pa.Tables in the exact BINARIES and
    SYMBOLS schemas. Each binary opened once, each (binary, address) resolved once; problems
    (not ELF, no .gopclntab, unreadable, replaced since the mapping was read) go to
    ``binaries.problem``, never an exception.
    ``identify(path) -> Identity``: the binary key (``Identity.binary``: "gnu:<build id>",
    "go:<Go build id>" or "file:<sha256>", as the BINARIES comment says) for MAPPINGS.binary.

    SYMBOLS.address (and MAPPINGS-derived addresses everywhere here) is the FILE-OFFSET
    address ``pc - start + file_offset``: computable from the trace alone, so a trace names
    its stacks on a machine without the binary. The ELF virtual address (what
    ``go tool addr2line`` takes) is internal to the lookup.

Read side (analyzer)
    ``StackNamer(tables)``: ``.frames(pid, stack_id, ts_ns=None) -> list[NamedFrame]``,
    innermost first, outermost last, inlined callees expanded (NamedFrame: function, file,
    line, binary, address, resolved, reason). From the extract; when the trace lacks the
    extract of a binary, from the binary itself if its identity still matches; else
    "basename+0xOFFSET" with ``resolved=False`` and the ``reason``.

Lower level
    ``BinarySymbols(path).resolve(file_addresses) -> {address: [Frame, ...]}`` (innermost
    first; depth 0 = innermost, as SYMBOLS.depth), ``Frame(function, file, line)``.

Components (tracer/symbols/components.py)
    ``components.from_profile(profile_data) -> StackComponents`` (the profile's
    "stack_components" key; ``components.builtin("k3s")``), then
    ``.component_of(function_names_innermost_first, exe_names) -> StackComponent | None``
    (component, depth of the deciding frame, its function); None: use the process's exe
    component.
"""

from __future__ import annotations

from tracer.symbols.binary import BinarySymbols, Identity, identify
from tracer.symbols.components import StackComponent, StackComponents
from tracer.symbols.elf import BinaryError
from tracer.symbols.extract import NamedFrame, StackNamer, extract, stack_pcs
from tracer.symbols.gopclntab import Frame

__all__ = [
    "BinaryError",
    "BinarySymbols",
    "Frame",
    "Identity",
    "NamedFrame",
    "StackComponent",
    "StackComponents",
    "StackNamer",
    "extract",
    "identify",
    "stack_pcs",
]
