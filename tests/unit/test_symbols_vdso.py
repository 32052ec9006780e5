"""vDSO frames are named from the recorder's own copy of the image (tracer/symbols/vdso.py),
checked against objdump's dynamic symbol table of the same bytes (binutils, the reference),
and the collector keeps the `[vdso]` mapping so a sample there is resolved at all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tracer.collector.stacks import VDSO, exec_mappings
from tracer.symbols import BinarySymbols, identify, vdso

pytestmark = pytest.mark.skipif(not shutil.which("objdump"), reason="needs binutils")


def test_the_collector_keeps_the_vdso_mapping() -> None:
    maps = [m for m in exec_mappings(os.getpid()) if m.path == VDSO]
    assert len(maps) == 1, exec_mappings(os.getpid())
    own = vdso.image()
    assert own is not None and own[1] == maps[0].end - maps[0].start


def test_vdso_functions_are_named_as_objdump_names_them() -> None:
    own = vdso.image()
    assert own is not None
    out = subprocess.run(["objdump", "-T", own[0]], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    # "0000000000000c10  w   DF .text  0000000000000005  LINUX_2.6   clock_gettime"
    funcs = [(int(a, 16), int(n, 16), name) for a, n, name in
             re.findall(r"^([0-9a-f]+) .* DF \.text\s+([0-9a-f]+)\s+\S+\s+(\S+)$", out, re.M)]
    assert any(n.endswith("clock_gettime") for _, _, n in funcs), out
    assert identify(VDSO).binary.startswith("gnu:")
    with BinarySymbols(VDSO) as syms:
        for addr, size, _ in funcs:
            # aliases share an address (clock_gettime, __vdso_clock_gettime): either is right
            same = {n for a, _, n in funcs if a == addr}
            for inside in (addr, addr + size - 1):
                got = [f.function for f in syms.resolve_vaddr(inside)]
                assert len(got) == 1 and got[0] in same, (hex(inside), got, same)
