"""Feature-probe the kernel's tracepoints, build the cflags, compile and attach the BPF programs.

Decisions are made by looking at what this kernel HAS (tracefs format files), never by
comparing version numbers: a concern whose tracepoints are missing is reported unavailable
with the reason, and the others still record.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer._errors import PrivilegeError, ProbeError

BPF_DIR = Path(__file__).resolve().parent.parent.parent / "bpf"
TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))

#: concern -> tracepoints it cannot work without
REQUIRED: Mapping[str, tuple[str, ...]] = {
    "process": (
        "task/task_newtask",
        "sched/sched_process_exec",
        "sched/sched_process_exit",
        "syscalls/sys_enter_execve",
        "syscalls/sys_exit_execve",
    ),
    "socket": (
        "syscalls/sys_enter_connect",
        "syscalls/sys_exit_connect",
        "syscalls/sys_enter_bind",
        "syscalls/sys_exit_bind",
        "syscalls/sys_enter_listen",
        "syscalls/sys_exit_listen",
        "syscalls/sys_enter_accept4",
        "syscalls/sys_exit_accept4",
        "syscalls/sys_enter_accept",
        "syscalls/sys_exit_accept",
        "sock/inet_sock_set_state",
        "sock/inet_sk_error_report",
    ),
    "module": (),  # all optional: see OPTIONAL
    "cgroup": ("cgroup/cgroup_mkdir",),
}

#: -D flag -> tracepoints that must all exist for it
OPTIONAL: Mapping[str, tuple[str, ...]] = {
    "HAVE_EXECVEAT": ("syscalls/sys_enter_execveat", "syscalls/sys_exit_execveat"),
    "HAVE_EXIT_GROUP": ("syscalls/sys_enter_exit_group",),
    "HAVE_SIGNAL_GENERATE": ("signal/signal_generate",),
    "HAVE_MODULE_TP": ("module/module_load", "module/module_free"),
    "HAVE_INIT_MODULE_SC": (
        "syscalls/sys_enter_init_module",
        "syscalls/sys_exit_init_module",
        "syscalls/sys_enter_finit_module",
        "syscalls/sys_exit_finit_module",
    ),
}


def tracefs() -> Path | None:
    for p in TRACEFS_CANDIDATES:
        if (p / "events").is_dir():
            return p
    return None


def tracepoint_format(tfs: Path, name: str) -> str | None:
    try:
        return (tfs / "events" / name / "format").read_text()
    except OSError:
        return None


@dataclass
class ProbePlan:
    """What will be compiled: cflags, and per concern 'attached' or the reason it is not."""

    cflags: list[str]
    concerns: dict[str, str]  # concern -> "attached" | "unavailable: <reason>"
    tracepoints: list[str] = field(default_factory=list)

    @property
    def unavailable(self) -> dict[str, str]:
        return {k: v.split(": ", 1)[1] for k, v in self.concerns.items() if v != "attached"}


def plan(
    *,
    self_tgid: int | None = None,
    ring_pages: int = 4096,
    wakeup: bool = False,
    max_args: int = 20,
    arg_len: int = 256,
    concerns: tuple[str, ...] = ("process", "socket", "module", "cgroup"),
) -> ProbePlan:
    """Decide what to build from what this kernel offers."""
    tfs = tracefs()
    if tfs is None:
        raise ProbeError(
            "tracefs is not mounted: run `sudo mount -t tracefs nodev /sys/kernel/tracing` "
            "(or `sudo make setup`)"
        )
    if ring_pages <= 0 or ring_pages & (ring_pages - 1):
        raise ProbeError(f"ring buffer pages must be a power of two, got {ring_pages}")
    cflags = [
        f"-I{BPF_DIR}",
        f"-DSELF_TGID={self_tgid if self_tgid is not None else os.getpid()}",
        f"-DRB_PAGES={ring_pages}",
        f"-DMAX_ARGS={max_args}",
        f"-DARG_LEN={arg_len}",
        "-DRB_FLAGS=0" if wakeup else "-DRB_FLAGS=BPF_RB_NO_WAKEUP",
    ]
    have = {flag for flag, tps in OPTIONAL.items() if all(tracepoint_format(tfs, t) for t in tps)}
    cflags += [f"-D{flag}" for flag in sorted(have)]
    exit_fmt = tracepoint_format(tfs, "sched/sched_process_exit") or ""
    if "group_dead" in exit_fmt:
        cflags.append("-DHAVE_EXIT_GROUP_DEAD")
    status: dict[str, str] = {}
    tps: list[str] = []
    for concern in ("process", "socket", "module", "cgroup"):
        if concern not in concerns:
            status[concern] = "unavailable: not requested"
            continue
        missing = [t for t in REQUIRED[concern] if tracepoint_format(tfs, t) is None]
        if concern == "module" and not ({"HAVE_MODULE_TP", "HAVE_INIT_MODULE_SC"} & have):
            reason = (
                "kernel built without loadable modules (CONFIG_MODULES): no module "
                "tracepoints"
                if not Path("/proc/modules").exists()
                else "no module:module_load or init_module tracepoints on this kernel"
            )
            status[concern] = f"unavailable: {reason}"
            continue
        if missing:
            status[concern] = f"unavailable: missing tracepoints {', '.join(missing)}"
            continue
        status[concern] = "attached"
        cflags.append(f"-DPROBE_{concern.upper()}")
        tps += list(REQUIRED[concern])
    for flag in sorted(have):
        tps += list(OPTIONAL[flag])
    if not any(v == "attached" for v in status.values()):
        raise ProbeError("no probe can attach on this kernel (run `k3sprof doctor`)")
    return ProbePlan(cflags=cflags, concerns=status, tracepoints=sorted(set(tps)))


def source() -> str:
    """The program text BCC compiles: k3sprof.bpf.c with its per-concern files inlined.

    BCC generates the `args` struct of a TRACEPOINT_PROBE only for probes in the main
    source text, not in #included files, so the concern files are spliced in here (the
    #ifdef PROBE_* guards around each include still decide what is compiled).
    """
    out = []
    for line in (BPF_DIR / "k3sprof.bpf.c").read_text().splitlines():
        inc = line.strip()
        if inc.startswith('#include "') and inc.endswith('.bpf.c"'):
            name = inc[len('#include "') : -1]
            out.append(f"/* ---- {name} ---- */")
            out.append((BPF_DIR / name).read_text())
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def require_root() -> None:
    if os.geteuid() != 0:
        raise PrivilegeError("recording needs root (BPF + tracefs): run with sudo")


def load(p: ProbePlan) -> tuple[Any, float]:
    """Compile and attach; returns (bcc.BPF, seconds it took). Imports bcc lazily."""
    require_root()
    t0 = time.monotonic()
    try:
        from bcc import BPF
    except ImportError:
        raise ProbeError(
            "BCC's Python module is missing: install python3-bpfcc (Debian/Ubuntu) or "
            "python3-bcc (Fedora/SUSE), and run k3sprof from a venv made with "
            "--system-site-packages (`sudo make setup` does both)"
        ) from None
    kdir = Path("/lib/modules") / platform.release() / "build"
    if not kdir.exists():
        raise ProbeError(
            f"no kernel headers at {kdir}: install linux-headers-{platform.release()} "
            "(or run `sudo make setup`, which links the nearest distro headers)"
        )
    try:
        bpf = BPF(text=source(), cflags=p.cflags)
    except Exception as e:  # bcc raises bare Exception on compile/load failure
        raise ProbeError(f"BPF programs failed to compile or load: {e}") from None
    if bpf.num_open_tracepoints() == 0:
        bpf.cleanup()
        raise ProbeError("no tracepoint attached (run `k3sprof doctor`)")
    return bpf, time.monotonic() - t0


def program_ids(bpf: Any) -> dict[str, int]:
    """Loaded program name -> kernel prog id (from /proc/self/fdinfo), for meta.json: the
    kernel's own name field is cut to 15 characters, and bench.probe_cost needs the names
    to read per-program run counts and times (kernel.bpf_stats_enabled)."""
    out: dict[str, int] = {}
    for name, fn in getattr(bpf, "funcs", {}).items():
        try:
            info = Path(f"/proc/self/fdinfo/{fn.fd}").read_text()
        except (OSError, AttributeError):
            continue
        for line in info.splitlines():
            if line.startswith("prog_id:"):
                key = name.decode() if isinstance(name, bytes) else str(name)
                out[key] = int(line.split(":", 1)[1])
    return out
