"""PLT stubs are named `symbol@plt`, checked against objdump (binutils), the reference tool.

A Go daemon built with cgo (Debian's containerd and etcd) calls libc through PLT stubs; an
on-CPU sample in one had no name (`containerd+0x85f280`) before the stubs were read. objdump
labels each stub from the GOT slot its jump reads and that slot's relocation: the names here
must match it for every stub, in programs built here (plain .plt, and .plt.sec for CET/IBT)
and in the system's binaries (glibc's own .rela.plt is not in its stubs' order).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracer.symbols.binary import BinarySymbols

pytestmark = pytest.mark.skipif(
    not (shutil.which("objdump") and shutil.which("gcc")), reason="needs binutils and gcc"
)

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("%d %zu\n", atoi(argv[0]), strlen(argv[0]));
    puts(getenv("HOME") ? "home" : "none");
    return abs(argc) - 1;
}
"""


def objdump_plt(path: Path) -> list[tuple[int, str]]:
    out = subprocess.run(
        ["objdump", "-d", "-j", ".plt", "-j", ".plt.sec", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [(int(a, 16), n) for a, n in re.findall(r"^([0-9a-f]+) <(.+@plt)>:", out, re.M)]


def built(tmp_path: Path, name: str, *flags: str) -> Path:
    src = tmp_path / "plt.c"
    src.write_text(PROGRAM)
    out = tmp_path / name
    subprocess.run(["gcc", "-O1", *flags, "-o", str(out), str(src)], check=True)
    return out


def _check(path: Path) -> int:
    stubs = objdump_plt(path)
    assert stubs, f"objdump found no PLT stub in {path}"
    with BinarySymbols(str(path)) as syms:
        for addr, want in stubs:
            for inside in (addr, addr + 6, addr + 15):  # any byte of the 16-byte stub
                got = [f.function for f in syms.resolve_vaddr(inside)]
                assert got == [want], (path, hex(inside), got, want)
    return len(stubs)


def test_a_programs_plt_stubs_are_named_as_objdump_names_them(tmp_path: Path) -> None:
    assert _check(built(tmp_path, "plain")) >= 5


def test_cet_plt_sec_stubs_are_named_as_objdump_names_them(tmp_path: Path) -> None:
    prog = built(tmp_path, "ibt", "-fcf-protection=full", "-Wl,-z,ibtplt")
    assert ".plt.sec" in subprocess.run(["readelf", "-SW", str(prog)], capture_output=True,
                                        text=True).stdout  # fmt: skip
    assert _check(prog) >= 5


@pytest.mark.parametrize(
    "path",
    ["/usr/bin/containerd", "/usr/bin/etcd", "/lib/x86_64-linux-gnu/libc.so.6",
     "/usr/bin/python3"],
)  # fmt: skip
def test_system_binaries_plt_stubs_are_named_as_objdump_names_them(path: str) -> None:
    p = Path(path).resolve()
    if not p.exists():
        pytest.skip(f"{path} not installed here")
    _check(p)
