"""The vDSO: the kernel's small shared object mapped into every process (`[vdso]` in
/proc/PID/maps), where Go's runtime.nanotime1/walltime read the clock without a syscall. It
is no file, so a sample in it had only a raw address. It is the same image in every 64-bit
process of one kernel: perf names vDSO frames from its own copy, and so does this module: the
recorder's own `[vdso]` bytes (read from /proc/self/mem), written once to a private file that
ElfImage opens for the path `[vdso]`. A process whose vDSO is not that size (a 32-bit process's
vdso32) is not named from it (stacks.py keys only a same-size mapping).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

#: the path /proc/PID/maps shows for the vDSO (and MAPPINGS.path keeps)
VDSO = "[vdso]"

_image: tuple[str, int] | None = None
_tried = False


def _own_range(maps: str) -> tuple[int, int] | None:
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[5] == VDSO:
            lo, hi = parts[0].split("-")
            return int(lo, 16), int(hi, 16)
    return None


def image() -> tuple[str, int] | None:
    """(path of a private copy of this process's vDSO, its size), made once; None when this
    process has no vDSO or it cannot be read."""
    global _image, _tried
    if _tried:
        return _image
    _tried = True
    try:
        rng = _own_range(Path("/proc/self/maps").read_text())
        if rng is None:
            return None
        with open("/proc/self/mem", "rb", buffering=0) as mem:
            mem.seek(rng[0])
            data = mem.read(rng[1] - rng[0])
    except OSError:
        return None
    if not data.startswith(b"\x7fELF"):
        return None
    d = tempfile.mkdtemp(prefix="k3sprof-vdso-")
    atexit.register(shutil.rmtree, d, True)
    path = os.path.join(d, "vdso.so")
    with open(path, "wb") as f:
        f.write(data)
    _image = (path, len(data))
    return _image
