"""Feature-probe the kernel's tracepoints, build the cflags, compile and attach the BPF programs.

Compiling is BCC's job; a compiled build is cached by bpfcache.py and loaded from there by
later recordings with the same kernel, source and options (no bcc import, no LLVM).

Decisions are made by looking at what this kernel HAS (tracefs format files), never by
comparing version numbers: a concern whose tracepoints are missing is reported unavailable
with the reason, and the others still record.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer._errors import PrivilegeError, ProbeError
from tracer.collector import bpfcache, btf

#: the BPF C sources: tracer/bpf/ in an installed wheel (pyproject.toml packages bpf/ there),
#: else bpf/ next to tracer/ (the source tree, editable installs)
_WHEEL_BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
BPF_DIR = (_WHEEL_BPF_DIR if _WHEEL_BPF_DIR.is_dir()
           else Path(__file__).resolve().parent.parent.parent / "bpf")
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
    # user stacks: the target set follows forks, execs and exits (bpf/stacks.bpf.c); the
    # sampler is a perf event, checked by stacks.support()
    "stacks": (
        "task/task_newtask",
        "sched/sched_process_exec",
        "sched/sched_process_exit",
    ),
    "sched": (
        "sched/sched_switch",
        "sched/sched_waking",
        "sched/sched_wakeup_new",
        "syscalls/sys_enter_fsync",
        "syscalls/sys_exit_fsync",
        "syscalls/sys_enter_fdatasync",
        "syscalls/sys_exit_fdatasync",
    ),
}
#: every concern, in build order
CONCERNS = ("process", "socket", "module", "cgroup", "stacks", "sched")
#: concerns the user can turn off (record --no-sched): not listed at all when off, so a
#: recording without them is not reported as missing something
OPT_IN = ("sched",)

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

#: like OPTIONAL, for the sched concern only (tracer/collector/sched.py, bpf/sched.h)
SCHED_OPTIONAL: Mapping[str, tuple[str, ...]] = {
    "HAVE_SCHED_IRQ": ("irq/softirq_entry", "irq/softirq_exit", "irq/irq_handler_entry",
                       "irq/irq_handler_exit"),
    "HAVE_SCHED_HRTIMER": ("timer/hrtimer_expire_entry", "timer/hrtimer_expire_exit"),
    "HAVE_SCHED_BLOCK": ("block/block_rq_issue", "block/block_rq_complete"),
    "HAVE_SCHED_SYNC_FILE_RANGE": ("syscalls/sys_enter_sync_file_range",
                                   "syscalls/sys_exit_sync_file_range"),
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
    #: events of this process are not recorded (written into the self_tgid map at load)
    self_tgid: int = 0
    #: how the sched concern hooks the scheduler (SchedHooks.as_meta), None when it is off
    sched_hooks: dict[str, Any] | None = None
    #: the stacks concern's on-CPU sampling rate (Hz), attached at load
    sample_hz: int = 0

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
    concerns: tuple[str, ...] = CONCERNS,
    sched_hooks: str = "auto",
    sample_hz: int = 49,
    stack_map_entries: int = 16384,
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
    hooks_meta: dict[str, Any] | None = None
    for concern in CONCERNS:
        if concern not in concerns:
            if concern not in OPT_IN:
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
        if concern == "stacks":
            why = _stacks_unsupported(status)
            if why:
                status[concern] = f"unavailable: {why}"
                continue
        status[concern] = "attached"
        cflags.append(f"-DPROBE_{concern.upper()}")
        tps += list(REQUIRED[concern])
        if concern == "stacks" and stack_map_entries != 16384:
            cflags.append(f"-DSTACK_MAP_ENTRIES={stack_map_entries}")
        if concern == "sched":
            hooks = choose_sched_hooks(sched_hooks)
            hooks_meta = hooks.as_meta()
            cflags += hooks.cflags()
            for flag, opt in SCHED_OPTIONAL.items():
                if all(tracepoint_format(tfs, t) for t in opt):
                    cflags.append(f"-D{flag}")
                    tps += list(opt)
    for flag in sorted(have):
        tps += list(OPTIONAL[flag])
    if not any(v == "attached" for v in status.values()):
        raise ProbeError("no probe can attach on this kernel (run `k3sprof doctor`)")
    return ProbePlan(cflags=cflags, concerns=status, tracepoints=sorted(set(tps)),
                     self_tgid=self_tgid if self_tgid is not None else os.getpid(),
                     sched_hooks=hooks_meta,
                     sample_hz=sample_hz if status.get("stacks") == "attached" else 0)



#: record --sched-hooks: auto (raw tracepoints where this kernel allows, else tracepoints)
SCHED_HOOKS = ("auto", "raw", "tracepoint")
#: the raw tracepoints' leading arguments the raw programs read (bpf/sched.bpf.c);
#: sched_switch passes prev_state as an argument since Linux 5.18. The irq and hrtimer
#: programs are raw too when the path is raw (they read plain numbers, or nothing).
RAW_SCHED_PARAMS: Mapping[str, tuple[str, ...]] = {
    "sched_switch": ("_Bool", "struct task_struct *", "struct task_struct *", "unsigned int"),
    "sched_waking": ("struct task_struct *",),
    "sched_wakeup_new": ("struct task_struct *",),
    "softirq_entry": ("unsigned int",),
    "softirq_exit": ("unsigned int",),
    "irq_handler_entry": ("int",),
    "irq_handler_exit": ("int",),
    "hrtimer_expire_entry": (),
    "hrtimer_expire_exit": (),
}


@dataclass(frozen=True)
class SchedHooks:
    """How the sched concern hooks sched_switch / sched_waking / sched_wakeup_new."""

    path: str  # "raw_tracepoint" | "tracepoint"
    why: str
    task_pid_offset: int | None = None
    #: task_struct.se.sum_exec_runtime: the steal split (bpf/sched.bpf.c "Steal"); either path
    task_exec_offset: int | None = None

    def cflags(self) -> list[str]:
        out = [] if self.task_exec_offset is None else \
            [f"-DTASK_EXEC_OFF={self.task_exec_offset}"]
        if self.path != "raw_tracepoint":
            return out
        return ["-DSCHED_RAW_TP", f"-DTASK_PID_OFF={self.task_pid_offset}", *out]

    def as_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "why": self.why}
        if self.task_pid_offset is not None:
            out["task_pid_offset"] = self.task_pid_offset
        if self.task_exec_offset is not None:
            out["task_exec_offset"] = self.task_exec_offset
        return out


def choose_sched_hooks(want: str = "auto") -> SchedHooks:
    """Raw tracepoints when this kernel's BTF shows the arguments the raw programs expect
    and where task_struct.pid is; else the tracepoint programs (the fallback). `want`
    "raw" fails (ProbeError) instead of falling back; "tracepoint" never tries raw."""
    if want not in SCHED_HOOKS:
        raise ProbeError(f"--sched-hooks must be one of {', '.join(SCHED_HOOKS)}, not {want}")
    offs = _btf_task_offsets()
    if want == "tracepoint":
        return SchedHooks("tracepoint", "asked for (--sched-hooks tracepoint)",
                          task_exec_offset=offs.exec_runtime)
    if offs.pid is None:
        if want == "raw":
            raise ProbeError(f"raw tracepoints cannot be used on this kernel: {offs.why}")
        return SchedHooks("tracepoint", f"fallback: {offs.why}",
                          task_exec_offset=offs.exec_runtime)
    return SchedHooks("raw_tracepoint", f"kernel BTF: task_struct.pid at byte {offs.pid}; "
                      "sched_switch passes prev_state", offs.pid, offs.exec_runtime)


@dataclass(frozen=True)
class _TaskOffsets:
    """What the sched programs need from the kernel's BTF: task_struct.pid's offset (None
    when the raw tracepoints cannot be used; `why` says why) and that of
    task_struct.se.sum_exec_runtime (the steal split; None without usable BTF)."""

    pid: int | None
    exec_runtime: int | None
    why: str = ""


def _btf_task_offsets() -> _TaskOffsets:
    """The task_struct offsets, from one walk of the kernel's BTF (~0.15 s) or from a note of
    it kept in the bytecode cache directory, keyed by the kernel build (release + version
    string + BTF size): later recordings on the same kernel skip the walk."""
    try:
        size = btf.VMLINUX.stat().st_size
    except OSError:
        return _TaskOffsets(None, None, "no kernel BTF (/sys/kernel/btf/vmlinux)")
    try:
        build = Path("/proc/sys/kernel/version").read_text().strip()
    except OSError:
        build = ""
    # "btf3": bump when the checks below change; an older note does not vouch for new ones
    note = bpfcache.note_path(f"btf3-{platform.release()}-{size}-{build}")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if note is not None:
            d = json.loads(note.read_text())
            return _TaskOffsets(d["pid"], d["exec_runtime"], str(d["why"]))
    offs = _walk_btf()
    if note is not None:
        with contextlib.suppress(OSError):
            bpfcache.write_note(note, json.dumps(
                {"pid": offs.pid, "exec_runtime": offs.exec_runtime, "why": offs.why}))
    return offs


def _walk_btf() -> _TaskOffsets:
    try:
        b = btf.load()
    except btf.BTFError as e:
        return _TaskOffsets(None, None, f"kernel BTF: {e}")
    try:
        exec_runtime: int | None = b.member_offset("task_struct", "se") + \
            b.member_offset("sched_entity", "sum_exec_runtime")
    except btf.BTFError:
        exec_runtime = None
    for event, want in RAW_SCHED_PARAMS.items():
        try:
            got = tuple(b.raw_tracepoint_params(event))
        except btf.BTFError as e:
            return _TaskOffsets(None, exec_runtime, f"kernel BTF: {e}")
        if got[:len(want)] != want:
            return _TaskOffsets(None, exec_runtime,
                                f"raw tracepoint {event} takes ({', '.join(got)}), the "
                                f"programs expect ({', '.join(want)})")
    try:
        return _TaskOffsets(b.member_offset("task_struct", "pid"), exec_runtime)
    except btf.BTFError as e:
        return _TaskOffsets(None, exec_runtime, f"kernel BTF: {e}")


def _stacks_unsupported(status: Mapping[str, str]) -> str | None:
    """Why the stacks concern cannot be built here (it follows the process concern's
    forks/execs, and needs CPU-clock perf events and a stack-trace map), else None."""
    if status.get("process") != "attached":
        return "needs the process concern"
    if os.geteuid() != 0:
        return "needs root (perf events, BPF maps)"

    return bpfcache.stacks_support()


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


class Attached:
    """The loaded, attached programs, whichever way they were loaded: BCC's compile (`bpf`
    set) or the bytecode cache (`cached` set, no bcc import). What the recorder needs:
    the ring buffer's fd, the lost-event counters, the program ids, detach and close."""

    def __init__(self, *, bpf: Any = None, cached: Any = None, compile_s: float = 0.0,
                 source: str = "bcc", cache_note: str | None = None) -> None:
        self.bpf = bpf
        self.cached = cached
        self.compile_s = compile_s
        self.source = source  # "bcc" | "cache"
        self.cache_note = cache_note  # why the cache was not used/written, if it matters
        #: the stacks sampler's perf events, "cpu-clock:N" -> fd (attach_sampler)
        self.perf_fds: dict[str, int] = {}

    def attach_sampler(self, hz: int) -> None:
        """Attach bpf/stacks.bpf.c's on-CPU sampler to every online CPU's clock at hz."""

        fd = self.program_fds().get("stacks__cpu_sample")
        if fd is None:
            raise ProbeError("the stacks sampler program was not loaded")
        try:
            self.perf_fds = bpfcache.attach_perf_event(fd, hz)
        except bpfcache.CacheError as e:
            raise ProbeError(f"cannot attach the stacks sampler: {e}") from None

    def map_fd(self, name: str) -> int:
        if self.cached is not None:
            return int(self.cached.maps[name])
        return int(self.bpf[name].map_fd)

    @property
    def ring_fd(self) -> int:
        return self.map_fd("events")

    def lost(self) -> list[int]:
        """Failed ring-buffer reservations per CPU."""

        try:
            raw = bpfcache.lookup(self.map_fd("lost_events"), b"\0\0\0\0", 8, percpu=True)
        except (bpfcache.CacheError, KeyError, OSError):
            return []
        return [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]

    def set_self(self, tgid: int) -> None:

        bpfcache.update(self.map_fd("self_tgid"), b"\0\0\0\0", tgid.to_bytes(4, "little"))

    def tracepoint_fds(self) -> dict[str, int]:
        if self.cached is not None:
            return dict(self.cached.tracepoint_fds)
        return {k.decode() if isinstance(k, bytes) else str(k): int(v)
                for k, v in self.bpf.tracepoint_fds.items()}

    def program_fds(self) -> dict[str, int]:
        if self.cached is not None:
            return dict(self.cached.prog_fds)
        return {(k.decode() if isinstance(k, bytes) else str(k)): int(f.fd)
                for k, f in self.bpf.funcs.items()}

    def raw_tracepoint_fds(self) -> dict[str, int]:
        if self.cached is not None:
            return dict(self.cached.raw_tracepoint_fds)
        return {k.decode() if isinstance(k, bytes) else str(k): int(v)
                for k, v in getattr(self.bpf, "raw_tracepoint_fds", {}).items()}

    def num_attached(self) -> int:
        return len(self.tracepoint_fds()) + len(self.raw_tracepoint_fds())

    def _forget_raw(self) -> list[int]:
        """The raw tracepoint links' fds, taken out of the loader's bookkeeping (so its
        cleanup does not close them again): closing one detaches its program."""
        fds = list(self.raw_tracepoint_fds().values())
        if self.cached is not None:
            self.cached.raw_tracepoint_fds.clear()
        elif getattr(self.bpf, "raw_tracepoint_fds", None):
            self.bpf.raw_tracepoint_fds.clear()
        return fds

    def detach(self, background: bool = False) -> None:
        """Each tracepoint detach waits for an RCU grace period in the kernel
        (tracepoint_synchronize_unregister), under a mutex: 22 detaches take 0.7-0.8 s here
        whether closed from one thread or many. With background=True (the recording is
        complete and written), a forked child holds the last reference to the perf events
        and closes them after we exit: our copies close at once (they are not the last),
        and the stop does not wait ~0.8 s for the kernel. Until the child is done the
        programs still run and fill a ring buffer nobody reads, which costs nothing."""
        from concurrent.futures import ThreadPoolExecutor

        # the sampler first: a software perf event closes without waiting for the kernel
        while self.perf_fds:
            _close_quietly(self.perf_fds.popitem()[1])
        raw = self._forget_raw()
        fds = list(self.tracepoint_fds().values())
        if background and fds and _detach_in_child(fds + raw):
            for fd in raw:
                _close_quietly(fd)
            for fd in fds:
                _close_quietly(fd)
            while _DETACH_DONE_FDS:  # now the child may close the last references
                _close_quietly(_DETACH_DONE_FDS.pop())
            if self.cached is not None:
                self.cached.tracepoint_fds.clear()
            else:
                self.bpf.tracepoint_fds.clear()
            return
        if self.cached is not None:
            fds = list(self.cached.tracepoint_fds.values()) + raw
            self.cached.tracepoint_fds.clear()
            if fds:
                with ThreadPoolExecutor(max_workers=len(fds)) as ex:
                    list(ex.map(_close_quietly, fds))
            return
        for fd in raw:
            _close_quietly(fd)
        tps = list(getattr(self.bpf, "tracepoint_fds", {}))
        if tps:
            with ThreadPoolExecutor(max_workers=len(tps)) as ex:
                list(ex.map(self.bpf.detach_tracepoint, tps))

    def close(self) -> None:
        if self.cached is not None:
            self.cached.close()
        else:
            self.bpf.cleanup()


def _detach_in_child(fds: list[int]) -> bool:
    """Fork a child that closes the perf event fds (the slow part of a detach) and exits;
    False if it cannot fork (the caller then detaches itself)."""
    # The child must close the perf events AFTER we have closed our copies: whoever closes
    # an event last pays its detach, and a child that ran ahead would leave us every one
    # of them (measured: stop 1.9 s instead of 0.3 s). It waits for EOF on this pipe, which
    # comes when we close the write end, after our copies.
    try:
        r, w = os.pipe()
    except OSError:
        return False
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return False
    if pid == 0:  # the child: only syscalls, then _exit (no Python cleanup, no flushing)
        try:
            # a name of its own (comm), so tools can tell it from a live recorder
            with contextlib.suppress(Exception):
                import ctypes

                ctypes.CDLL(None).prctl(15, b"k3sprof-detach", 0, 0, 0)  # PR_SET_NAME
            # hold nothing but the perf events: a reader of our stdout/stderr (a pipe, a
            # terminal, systemd) must see EOF when the recorder exits, not when we do
            null = os.open("/dev/null", os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(null, std)
            low = 3
            for fd in sorted([*fds, r]):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, 1 << 20)
            while os.read(r, 1):  # EOF: the recorder has closed its copies (or exited)
                pass
            for fd in fds:
                _close_quietly(fd)
        finally:
            os._exit(0)
    os.close(r)
    _reap_later(pid)
    _DETACH_DONE_FDS.append(w)
    return True


#: write ends of the detach children's pipes, closed once our perf fds are (detach())
_DETACH_DONE_FDS: list[int] = []


def _reap_later(pid: int) -> None:
    """Collect the detach child's exit status without waiting for it (no zombie if we live
    on, e.g. record() called from a long-running Python process)."""
    import threading

    def reap() -> None:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)

    threading.Thread(target=reap, daemon=True, name="k3sprof-detach-reaper").start()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _bcc_version_text() -> str:
    """BCC's version without importing it (the import alone is 0.04-0.4 s)."""
    import importlib.util

    spec = importlib.util.find_spec("bcc")
    if spec is None or not spec.origin:
        return "missing"
    try:
        return (Path(spec.origin).parent / "version.py").read_text()
    except OSError:
        return "unknown"


def cache_key(p: ProbePlan) -> str:

    tfs = tracefs()
    formats = [tracepoint_format(tfs, t) or "" for t in p.tracepoints] if tfs else []
    build = Path("/lib/modules") / platform.release() / "build"
    return bpfcache.key(source(), [*p.cflags, str(build.resolve())], _bcc_version_text(),
                        formats)


def load(p: ProbePlan, use_cache: bool = True, fill_cache: bool | None = None) -> Attached:
    """Load and attach the programs; from the bytecode cache when it has this exact build
    (use_cache), else compile with BCC and store the build in the cache (fill_cache, by
    default = use_cache). Imports bcc lazily, only to compile."""
    require_root()
    t0 = time.monotonic()
    note = None
    key = cache_key(p) if use_cache or fill_cache else None
    if use_cache and key is not None:

        tfs = tracefs()
        try:
            cached = bpfcache.load(key, tfs) if tfs else None
        except bpfcache.CacheError as e:
            cached, note = None, f"bytecode cache not used: {e}"
        if cached is not None:
            att = Attached(cached=cached, compile_s=time.monotonic() - t0, source="cache")
            att.set_self(p.self_tgid)
            _attach_sampler(att, p)
            return att
    bpf = _compile(p)
    att = Attached(bpf=bpf, source="bcc", cache_note=note)
    att.set_self(p.self_tgid)
    _attach_sampler(att, p)
    att.compile_s = time.monotonic() - t0
    if key is not None and (fill_cache is None or fill_cache):

        try:
            bpfcache.save(bpf, key)
        except (bpfcache.CacheError, OSError) as e:
            att.cache_note = f"bytecode cache not written: {e}"
    return att


def _attach_sampler(att: Attached, p: ProbePlan) -> None:
    if p.sample_hz <= 0:
        return
    try:
        att.attach_sampler(p.sample_hz)
    except ProbeError:
        att.detach()
        att.close()
        raise


def _compile(p: ProbePlan) -> Any:
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
    if bpf.num_open_tracepoints() + len(getattr(bpf, "raw_tracepoint_fds", {})) == 0:
        bpf.cleanup()
        raise ProbeError("no tracepoint attached (run `k3sprof doctor`)")
    if "-DPROBE_STACKS" in p.cflags:
        # loaded (not attached) here, so the bytecode cache stores it with the rest;
        # Attached.attach_sampler attaches it, from a compile or from the cache alike
        try:
            bpf.load_func(b"stacks__cpu_sample", BPF.PERF_EVENT)
        except Exception as e:  # bcc raises bare Exception on load failure
            bpf.cleanup()
            raise ProbeError(f"the stacks sampler failed to load: {e}") from None
    return bpf


def program_ids(att: Attached) -> dict[str, int]:
    """Loaded program name -> kernel prog id (from /proc/self/fdinfo), for meta.json: the
    kernel's own name field is cut to 15 characters, and bench.probe_cost needs the names
    to read per-program run counts and times (kernel.bpf_stats_enabled)."""
    out: dict[str, int] = {}
    for name, fd in att.program_fds().items():
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("prog_id:"):
                out[name] = int(line.split(":", 1)[1])
    return out
