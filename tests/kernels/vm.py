"""Booting distro kernels in QEMU for the kernel matrix (`make test-kernels`), host side.

* ``matrix()``: the kernels to test, one per series in ``SERIES``: the newest installed
  ``/boot/vmlinuz-<rel>`` of that series whose OWN headers are installed
  (``/lib/modules/<rel>/build`` -> ``/usr/src/linux-headers-<rel>``, as the Debian
  ``linux-headers-<rel>`` package makes it; never a link to another kernel's headers).
* ``accel()``: KVM or TCG, decided by a probe (boot a kernel for a few seconds with KVM and
  see whether it gets as far as looking for a root file system), never by a user flag. On
  nested-virtualisation hosts ``/dev/kvm`` often exists but cannot run a guest: QEMU aborts
  ("failed to set MSR") or the guest hangs right after decompression.
* ``start_vng()``: virtme-ng boots the kernel over the host's file system (read-only, plus one
  writable directory) and runs one command; its console output is the in-VM log.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: kernel series under test (Debian 12's own kernel and its 6.12 backport)
SERIES = ("6.1", "6.12")
#: the probe's kernel reaches "no root fs" in ~1 s with working KVM, ~5-15 s under TCG
KVM_PROBE_TIMEOUT_S = 25


@dataclass(frozen=True)
class Kernel:
    release: str  # uname -r inside the guest, e.g. 6.1.0-57-amd64
    series: str
    image: Path
    initrd: Path | None
    headers: Path  # realpath of /lib/modules/<release>/build

    @property
    def id(self) -> str:
        return self.release


def _series_of(release: str) -> str:
    m = re.match(r"(\d+\.\d+)", release)
    return m.group(1) if m else ""


def _own_headers(release: str) -> Path | None:
    """The kernel's own headers dir, or None (missing, or a link to another kernel's)."""
    build = Path("/lib/modules") / release / "build"
    if not (build / "include").exists():
        return None
    real = Path(os.path.realpath(build))
    return real if real.name == f"linux-headers-{release}" else None


def candidates() -> list[Kernel]:
    out = []
    for img in Path("/boot").glob("vmlinuz-*"):
        rel = img.name[len("vmlinuz-"):]
        hdr = _own_headers(rel)
        if hdr is None or not (Path("/lib/modules") / rel / "modules.dep").exists():
            continue
        initrd = Path("/boot") / f"initrd.img-{rel}"
        out.append(Kernel(rel, _series_of(rel), img, initrd if initrd.exists() else None, hdr))
    return out


def _version_key(release: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", release)]


def matrix() -> tuple[list[Kernel], list[str]]:
    """(kernels to boot, problems: series with no kernel + own headers installed)."""
    have = candidates()
    kernels, problems = [], []
    for s in SERIES:
        mine = sorted((k for k in have if k.series == s), key=lambda k: _version_key(k.release))
        if mine:
            kernels.append(mine[-1])
        else:
            problems.append(f"no Debian {s} kernel with its own headers installed "
                            f"(/boot/vmlinuz-{s}.* + linux-headers-<same release>): "
                            "run `sudo make setup`")
    return kernels, problems


@functools.lru_cache(maxsize=1)
def accel() -> tuple[str, str]:
    """("kvm" | "tcg", why): boot a kernel with KVM for a few seconds as the probe."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return "tcg", "qemu-system-x86_64 not installed"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm not usable"
    have = candidates()
    if not have:
        return "tcg", "no kernel to probe with"
    k = have[0]
    cmd = [qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1", "-nographic",
           "-no-reboot", "-nodefaults", "-serial", "stdio", "-kernel", str(k.image),
           "-append", "console=ttyS0 panic=-1 loglevel=7"]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                           timeout=KVM_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        raw = (e.stdout or b"") + (e.stderr or b"")
        out = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        rc = None
    took = time.monotonic() - t0
    if re.search(r"VFS: Unable to mount root|Kernel panic", out):
        return "kvm", f"a KVM guest reached the root mount in {took:.1f}s"
    last = [ln for ln in out.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    how = "hung" if rc is None else f"exited {rc}"
    return "tcg", f"KVM probe {how} after {took:.1f}s ({last[0][:120]})"


def vng_bin() -> str:
    """vng from the project venv (setup.sh installs virtme-ng there)."""
    here = Path(sys.executable).parent / "vng"
    if here.exists():
        return str(here)
    found = shutil.which("vng")
    if found is None:
        raise FileNotFoundError("vng (virtme-ng) not installed: run `sudo make setup`")
    return found


def start_vng(kernel: Kernel, command: str, rwdir: Path, log: Path, *, memory: str = "3G",
              cpus: int = 1) -> subprocess.Popen[bytes]:
    """Boot `kernel` and run `command` (a shell line, cwd = project root) as root, in the
    background; the console output goes to `log`. Wait with `finish()`."""
    mode, _ = accel()
    vng = vng_bin()
    cmd = [vng, "--run", str(kernel.image), "--memory", memory, "--cpus", str(cpus),
           "--rwdir", str(rwdir), "--exec", command]
    if mode == "tcg":
        cmd.insert(3, "--disable-kvm")
    env = dict(os.environ)
    env["PATH"] = f"{Path(vng).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=ROOT, env=env,
                                start_new_session=True)


def finish(p: subprocess.Popen[bytes], deadline: float) -> int | None:
    """Exit status of a VM started by start_vng, or None when it outlived `deadline`
    (time.monotonic()) and was killed."""
    try:
        return p.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.wait()
        return None


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} missing)"
    return "\n".join(text.splitlines()[-lines:])
