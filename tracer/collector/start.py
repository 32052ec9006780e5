"""`record`'s first step: the probes live before anything heavy is imported.

This module imports only the standard library and tracer.collector.probes (which brings
bpfcache, or BCC when the bytecode cache misses). pyarrow, numpy, the decoder and the assembler
(~0.2 s of a ~0.25 s start here; most of the ~8 s a TCG VM took to start recording) are
imported by tracer.collector.record after the probes are attached: meanwhile the ring buffer
keeps every event, and the trace starts at the moment the probes went live.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer._errors import ProbeError, TracerError, UsageError
from tracer.collector import bpfcache, probes, stacktargets

if TYPE_CHECKING:
    from tracer import conditions

#: tracer.schema.META_FILE (not imported from there: tracer.schema imports pyarrow)
META_FILE = "meta.json"


@dataclass
class RecordOptions:
    output: Path
    command: Sequence[str] = ()
    duration: float | None = None
    until: conditions.Condition | None = None
    user: str | None = None
    force: bool = False
    ring_pages: int = 4096
    flush_interval: float = 1.0
    poll_interval: float = 0.05
    wakeup: bool = False
    #: load a cached build of the BPF programs when there is one (probes.load)
    bpf_cache: bool = True
    max_args: int = 20
    arg_len: int = 256
    #: capture CMD's stdout/stderr into the log table (still shown on the terminal)
    capture_output: bool = True
    #: systemd units whose journal is followed into the log table
    journal_units: Sequence[str] = ()
    #: record link/address/route changes from netlink
    netlink: bool = True
    #: the scheduler concern (thread states, wakers, block I/O, fsyncs): docs/sched.md.
    #: On by default (record --no-sched turns it off): a boot is recorded once, and what
    #: explains it must be in the recording without the user knowing a flag
    sched: bool = True
    #: how sched hooks the scheduler: auto | raw | tracepoint (probes.choose_sched_hooks)
    sched_hooks: str = "auto"
    #: user stacks (docs/stacks.md): on-CPU samples at sample_hz and a stack at each event
    #: that explains a wait, for the tree of `record -- CMD` and the profile's executables
    stacks: bool = True
    sample_hz: int = 49
    #: the stack map's size (bpf/stacks.bpf.c STACK_MAP_ENTRIES; a power of two)
    stack_map_entries: int = 16384
    #: whose executables are stacks targets besides CMD's tree (stacktargets.PROFILE_EXES)
    profile: str = "k3s"
    #: called with progress messages (the CLI prints them); the first is the "recording" line
    notify: Callable[[str], None] = lambda msg: None
    argv: Sequence[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class RecordSummary:
    output: Path
    duration_s: float
    rows: dict[str, int]
    lost_events: int
    attach_s: float
    stop_reason: str
    command_exit: int | None
    unavailable: dict[str, str]
    #: meta.json "stacks" (None: not recorded)
    stacks: dict[str, Any] | None = None


@dataclass
class Live:
    """Probes attached: what go_live hands the recorder."""

    bpf: probes.Attached
    plan: probes.ProbePlan
    live_ns: int  # CLOCK_MONOTONIC when the last probe was attached: the trace's start
    attach_s: float  # from go_live's start to then
    #: the stacks concern's target maps (None: stacks off or unavailable)
    targets: stacktargets.Targets | None = None
    #: processes of the profile's executables already running at attach (made targets)
    targets_at_start: int = 0


def prepare_output(path: Path, force: bool) -> None:
    """Create the trace directory (0700); refuse to clobber unless force."""
    if path.exists():
        if not force:
            raise UsageError(f"{path} already exists (use --force to overwrite)")
        if path.is_dir() and (path / META_FILE).exists():
            shutil.rmtree(path)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        else:
            raise UsageError(f"{path} exists and is not a k3sprof trace: refusing to delete it")
    try:
        path.mkdir(mode=0o700, parents=True)
    except OSError as e:
        raise UsageError(f"cannot create {path}: {e.strerror}") from None
    os.chmod(path, 0o700)  # mkdir honours umask


def load_probes(o: RecordOptions, use_cache: bool,
                fill_cache: bool | None = None) -> tuple[probes.ProbePlan, probes.Attached]:
    """The probes of a recording with these options, loaded and attached (the bytecode cache
    is filled when BCC compiles, or as fill_cache says). The one way a build is chosen:
    record, `boot install`'s warming and doctor's compile check all come here, so what
    doctor checks and what the cache is warmed with is what a recording loads. The sched
    concern's stop-time freeze and map read go by map fd (collector/sched.py), so it loads
    from the cache like the rest."""
    concerns = tuple(c for c in probes.CONCERNS
                     if (o.sched or c != "sched") and (o.stacks or c != "stacks"))
    plan = probes.plan(ring_pages=o.ring_pages, wakeup=o.wakeup, max_args=o.max_args,
                       arg_len=o.arg_len, concerns=concerns, sched_hooks=o.sched_hooks,
                       sample_hz=o.sample_hz, stack_map_entries=o.stack_map_entries)
    try:
        return plan, probes.load(plan, use_cache=use_cache, fill_cache=fill_cache)
    except ProbeError as e:
        hooks = plan.sched_hooks or {}
        if o.sched_hooks != "auto" or hooks.get("path") != "raw_tracepoint":
            raise
        # the kernel's BTF promised raw tracepoints, but they did not load or attach: the
        # tracepoint programs are the fallback, and the recording says why
        plan = probes.plan(ring_pages=o.ring_pages, wakeup=o.wakeup, max_args=o.max_args,
                           arg_len=o.arg_len, concerns=concerns, sched_hooks="tracepoint",
                           sample_hz=o.sample_hz, stack_map_entries=o.stack_map_entries)
        assert plan.sched_hooks is not None
        plan.sched_hooks["why"] = f"fallback: raw tracepoint programs failed: {e}"
        return plan, probes.load(plan, use_cache=use_cache, fill_cache=fill_cache)


@dataclass
class CacheWarmth:
    """What warm_cache did: `source` "cache" (the build was there already) or "bcc" (compiled
    now and stored); seconds to load or compile and attach; a note when the cache could not
    be written (the recording would then compile again)."""

    source: str
    seconds: float
    note: str | None = None


def warm_cache(opts: RecordOptions) -> CacheWarmth:
    """Make sure the bytecode cache holds the build a recording with these options loads:
    load it (or compile with BCC and store it), attach, detach. `boot install` runs this so
    that the first traced boot loads instead of compiling while k3s waits."""
    probes.require_root()
    t0 = time.monotonic()
    _, att = load_probes(opts, use_cache=True)
    try:
        return CacheWarmth(att.source, time.monotonic() - t0, att.cache_note)
    finally:
        att.detach()
        att.close()


def go_live(opts: RecordOptions) -> Live:
    """Check the options, create the output, attach the probes (from the bytecode cache when
    it has them): the part of the start that nothing heavy is imported for."""
    o = opts
    t_start = time.monotonic()
    probes.require_root()
    prepare_output(o.output, o.force)
    if o.command and shutil.which(o.command[0]) is None:
        raise UsageError(f"command not found: {o.command[0]}")
    if o.profile not in stacktargets.PROFILE_EXES:
        raise UsageError(f"unknown profile {o.profile!r} (known: "
                         f"{', '.join(stacktargets.PROFILE_EXES)})")
    if o.stacks and not 1 <= o.sample_hz <= 1000:
        raise UsageError(f"--sample-hz must be between 1 and 1000, got {o.sample_hz}")
    n = o.stack_map_entries
    if o.stacks and (n < 16 or n > 1 << 20 or n & (n - 1)):
        raise UsageError(f"--stack-map-entries must be a power of two from 16 to 1048576, "
                         f"got {n}")
    plan, bpf = load_probes(o, use_cache=o.bpf_cache)
    targets, n_running = None, 0
    if plan.concerns.get("stacks") == "attached":
        try:
            targets = stacktargets.targets_of(bpf.map_fd)
            n_running = stacktargets.seed(targets, o.profile)
        except (bpfcache.CacheError, OSError) as e:
            bpf.detach()
            bpf.close()
            raise ProbeError(f"cannot set the stacks targets: {e}") from None
    live_ns = time.monotonic_ns()
    return Live(bpf=bpf, plan=plan, live_ns=live_ns, attach_s=time.monotonic() - t_start,
                targets=targets, targets_at_start=n_running)


#: Arrow's C++ default allocator choice, read once, the first time Arrow asks for its default pool
ARROW_POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


def _arrow_on_malloc() -> None:
    """Make the C library's malloc Arrow's C++ default allocator in this process, unless the
    user chose one (ARROW_DEFAULT_MEMORY_POOL).

    pyarrow's `set_memory_pool` (collector/record.py) only changes the pool pyarrow's Python
    calls pass; Arrow's C++ code that allocates from `arrow::default_memory_pool()` itself
    (IPC writing, compute kernels) still started mimalloc, whose arena came with a 2 MiB-page
    (THP) region: 4 MiB of the recorder's resident memory from its first batch on (measured:
    92.2 vs 96.2 MiB idle peak). Arrow reads the variable once, when that pool is first asked
    for: so it is set, the pool is asked for, and it is taken out of the environment again
    before the recorded command (which inherits our environment) can start.
    """
    if ARROW_POOL_ENV in os.environ:
        return
    os.environ[ARROW_POOL_ENV] = "system"
    try:
        import pyarrow as pa

        pa.default_memory_pool()  # arrow::default_memory_pool(): its choice is made now
    finally:
        del os.environ[ARROW_POOL_ENV]


def record(opts: RecordOptions) -> RecordSummary:
    """Record until the command exits, --until matches, --duration passes, or a signal."""
    if opts.ring_pages < 1:
        raise UsageError("--buffer-pages must be positive")
    live = go_live(opts)
    try:
        _arrow_on_malloc()
        from tracer.collector import decode
        from tracer.collector.record import Recorder

        recorder = Recorder(opts)
    except BaseException:
        live.bpf.detach()
        live.bpf.close()
        raise
    try:
        return recorder.run(live)
    except TracerError:
        raise
    except decode.UnknownRecord as e:
        raise ProbeError(f"the BPF programs and the decoder disagree ({e}): reinstall") from None
