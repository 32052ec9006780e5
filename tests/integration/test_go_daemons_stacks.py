"""Issue 23's "Done when" on real Go daemons: Debian's stripped etcd 3.4 and containerd 1.6
(Go 1.19, no .symtab, no DWARF: only .gopclntab names their functions), each recorded starting
up as a private instance (tests/integration/daemons.py) with the default recorder (stacks on)
until its ready line, sampling at 997 Hz (startup is short on CPU). Then, read back as a
user would (`k3sprof stacks`):

* >= 95 % of the daemon's on-CPU samples in Go code resolve to named functions: a stack was
  taken and every frame of it is a name (no `binary+0xOFFSET`, no raw address). A sample whose
  only frame is inside a stripped system library (the dynamic loader relocating the binary
  before Go's runtime starts, libc called through cgo: no frame pointer to walk, and only
  exported functions in .dynsym) is not Go code and no tool names it without debug symbols:
  those are counted and printed apart, and their frame must name its library
  (`libc.so.6+0xOFFSET`). Stubs in the daemon's own PLT and the vDSO are named (objdump's
  names: tests/unit/test_symbols_plt.py, test_symbols_vdso.py) and count as Go's;
* the folded stacks name the daemon's real packages (go.etcd.io/etcd/..., and
  github.com/containerd/containerd/...), not only the runtime's.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration import daemons
from tests.integration.recording import K3SPROF, ROOT, record
from tracer import schema

pytestmark = [pytest.mark.slow, pytest.mark.bpf]

MIN_NAMED = 0.95
SAMPLE_HZ = 997
#: an unnamed frame: `basename+0xOFFSET` (a mapped binary, no name) or a raw address
UNNAMED = re.compile(r"(\+0x[0-9a-f]+$)|(^0x[0-9a-f]+$)")
#: an unnamed frame in a mapped object, and that object's file name
LIB_FRAME = re.compile(r"^(.+\.so[.0-9]*)\+0x[0-9a-f]+$")


def _us(stamp: re.Pattern[str], block: str) -> int:
    m = stamp.match(block.lstrip("\n"))
    assert m, block[:200]
    return int(m[1]) * 1_000_000 + int(m[2])


def k3sprof(*args: str) -> str:
    p = subprocess.run([*K3SPROF, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, f"k3sprof {' '.join(args)}: {p.stderr[-2000:]}"
    return p.stdout


@pytest.mark.parametrize(
    ("make", "package"),
    [(daemons.etcd, "go.etcd.io/etcd/"), (daemons.containerd, "github.com/containerd/containerd/")],
    ids=["etcd", "containerd"],
)
def test_a_stripped_go_daemons_samples_are_named_with_its_packages(
    tmp_path: Path, make: Callable[[Path], daemons.Daemon | None], package: str
) -> None:
    d = make(tmp_path)
    if d is None:  # a failure in CI (tests/conftest.py): the setup installs both
        pytest.skip("daemon not installed (run: sudo make setup)")
    out = tmp_path / "trace"
    # a daemon's startup is short on CPU (etcd: a few tens of ms): sample near the recorder's
    # highest rate (a prime, off any timer's beat) so the share is judged on enough samples
    record(out, d.command, "--until", f"log:{d.ready}", "--sample-hz", str(SAMPLE_HZ), timeout=180)
    trace = schema.load(out)
    pid = trace.meta["command_pid"]
    binaries = trace.table("binaries").to_pylist()
    mine = [b for b in binaries if b["path"] == d.command[0]]
    assert len(mine) == 1 and mine[0]["symbolizer"] == "gopclntab", binaries
    assert mine[0]["go_version"].startswith("go1."), mine

    # the daemon's samples start at its exec: before it, the pid is still the recorder's forked
    # child (Python, libc) about to exec (the analysis shows those as "(before exec)")
    exec_ns = min(
        r["ts_ns"]
        for r in trace.table("process").to_pylist()
        if r["kind"] == "exec" and r["pid"] == pid and r["filename"] == d.command[0]
    )
    # every on-CPU sample of the daemon, as `perf script` text: header, frames, blank line
    blocks = [b for b in k3sprof("stacks", str(out), "--perf", "--pid", str(pid)).split("\n\n")
              if b.strip()]  # fmt: skip
    stamp = re.compile(r"\S+ \d+/\d+ (\d+)\.(\d{6}):")
    before = [b for b in blocks if _us(stamp, b) * 1000 < exec_ns]
    blocks = [b for b in blocks if _us(stamp, b) * 1000 >= exec_ns]
    frames_of = [[re.sub(r"^\t0 (.*) \(\S+\)$", r"\1", x) for x in b.splitlines()[1:]]
                 for b in blocks]  # fmt: skip
    me = Path(d.command[0]).name
    in_lib = [
        fr for fr in frames_of
        if len(lone := [f for f in fr if f != "(truncated)"]) == 1
        and (m := LIB_FRAME.match(lone[0])) and m[1] != me
    ]  # fmt: skip
    frames_of = [fr for fr in frames_of if fr not in in_lib]
    named = [
        fr for fr in frames_of
        if fr and fr != ["(no stack)"]
        and not [f for f in fr if f != "(truncated)" and UNNAMED.search(f)]
    ]  # fmt: skip
    truncated = sum(1 for fr in frames_of if fr and fr[-1] == "(truncated)")
    share = len(named) / len(frames_of) if frames_of else 0.0
    print(f"{Path(d.command[0]).name} ({mine[0]['go_version']}): {len(frames_of)} on-CPU "
          f"samples after its exec, {len(named)} named = {100 * share:.1f} %, {truncated} "
          f"truncated ({len(before)} samples of the pid before its exec left out; "
          f"{len(in_lib)} one-frame samples in a system library apart: "
          f"{sorted({fr[0].split('+')[0] for fr in in_lib})})")  # fmt: skip
    assert len(frames_of) >= 10, "too few samples to judge"
    assert share >= MIN_NAMED, [fr for fr in frames_of if fr not in named][:10]

    # the folded stacks (what flamegraph.pl reads) name the daemon's own packages
    folded = k3sprof("stacks", str(out), "--pid", str(pid)).splitlines()
    assert folded and all(re.match(rf"\S+\[{pid}\];.* \d+$", x) for x in folded), folded[:5]
    funcs = {f for x in folded for f in x.rsplit(" ", 1)[0].split(";")[1:]}
    own = sorted(f for f in funcs if f.startswith(package))
    print(f"{len(own)} distinct functions of {package}*, e.g. {own[:3]}")
    assert own, sorted(funcs)[:40]
    # and the samples in them count: a real share of the CPU is the daemon's own code
    in_own = sum(int(x.rsplit(" ", 1)[1]) for x in folded if f";{package}" in x)
    assert in_own > 0
