"""The recorder: attach the probes, drain the ring buffer, stream Arrow batches to a trace.

Hot path (per event): reading the record's header while walking the ring buffer's mmapped
pages (ringbuf.py: no per-record callback). Everything else runs per batch: decode (numpy
views), pair (assemble), write (Arrow IPC stream, flushed at least every second so SIGKILL
loses at most that).

Probes submit with BPF_RB_NO_WAKEUP and we consume on a timer: on startup-like bursts a
wakeup per event costs far more than the probes themselves (docs/platform.md).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import subprocess
import time
from collections import defaultdict
from types import FrameType
from typing import Any

import numpy.ma  # noqa: F401  (see below)
import pyarrow as pa

from tracer import __version__, conditions, host, schema
from tracer._errors import UsageError
from tracer.collector import bpfcache, decode, probes, procfs
from tracer.collector import sched as sched_collector
from tracer.collector import stacks as stacks_collector
from tracer.collector.assemble import Assembler
from tracer.collector.ringbuf import RingReader
from tracer.collector.start import Live, RecordOptions, RecordSummary, prepare_output, record

__all__ = ["Live", "RecordOptions", "RecordSummary", "Recorder", "prepare_output", "record"]

# The recorder's Arrow buffers come from the C library's malloc, not pyarrow's default mimalloc:
# its arenas added ~9 MB to the recorder's resident memory on the first batches (measured with
# ARROW_DEFAULT_MEMORY_POOL=system/mimalloc: 73 vs 82 MB after the first compute calls), and
# the recorder's batches are small. Set where the recorder is imported: not for the analyzer.
# numpy.ma is imported here, before the `recording` line, not lazily by the first
# pa.array(ndarray) (pyarrow checks for masked arrays): that import (~12 ms) landed in the
# first busy batch, i.e. in the traced startup's first burst (py-spy, 2026-12-01)
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())


class _Stop:
    """SIGINT/SIGTERM: the first asks for a clean stop, a second Ctrl-C stops now."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.now = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            self.now = True
        self.reason = self.reason or signal.Signals(signum).name


class Recorder:
    """One recording. Use record() unless you need the pieces."""

    def __init__(self, opts: RecordOptions) -> None:
        self.opts = opts
        self.chunks: defaultdict[int, list[bytes]] = defaultdict(list)
        self.buffered = 0  # records in self.chunks
        self.ring: RingReader | None = None
        self.writers: dict[str, schema.StreamWriter] = {}
        self.types = decode.dtypes(opts.max_args, opts.arg_len)
        self.types.update(sched_collector.dtypes())
        self.sched: sched_collector.SchedCollector | None = None
        self.stacks: stacks_collector.StackCollector | None = None
        self._live: Live | None = None
        self._bpf: Any = None
        describe = None
        try:
            from tracer.context import cgroups

            describe = cgroups.describe
        except ImportError:
            pass
        self.assembler = Assembler(describe_cgroup=describe)
        self.meta: dict[str, Any] = {}
        self.stop = _Stop()
        self.until_ns: int | None = None
        self.sources: list[Any] = []  # tracer.context.ContextSource
        self._nice = 0

    # -- ring buffer ------------------------------------------------------------------------
    def _consume(self) -> None:
        """Copy every submitted record out of the ring (bulk, see ringbuf.py)."""
        assert self.ring is not None
        before = self.ring.records
        got = self.ring.consume()
        for size, raw in got.items():
            self.chunks[size].append(raw)
        if self.stacks is not None and got:
            self.stacks.peek(got)
        self.buffered += self.ring.records - before

    def _write(self, tables: dict[str, pa.Table]) -> None:
        for name, t in tables.items():
            w = self.writers.get(name)
            if w is None:
                w = schema.StreamWriter(self.opts.output / (name + schema.TABLE_SUFFIX),
                                        schema.TABLES[name])
                self.writers[name] = w
            w.write(t)

    def _process_batch(self, final: bool = False) -> None:
        frozen = sched_collector.freeze(self._bpf, self._consume) if final and self.sched else None
        chunks, self.chunks = self.chunks, defaultdict(list)
        self.buffered = 0
        typed = decode.split(chunks, self.types)
        sched_typed = {t: typed.pop(t) for t in sched_collector.TYPES if t in typed}
        samples = typed.pop(decode.EV_STACK_SAMPLE, None)
        stack_tables = (self.stacks.feed({**typed, **sched_typed,
                                          decode.EV_STACK_SAMPLE: samples or []})
                        if self.stacks is not None else {})
        tables = self.assembler.feed(typed)
        tables.update(stack_tables)
        if self.sched is not None:
            tables.update(self.sched.feed(sched_typed))
            if frozen is not None:
                tables = _merge(tables, self.sched.finish(frozen.open_threads, frozen.end_ns))
                self.meta["sched"].update(repairs=self.sched.stats, end_ns=frozen.end_ns,
                                          missed_switches=frozen.missed)
        extra = [self.assembler.finish()] if final else []
        for src in self.sources:
            if final:
                src.stop()
            t = src.drain()
            if t is not None and t.num_rows:
                extra.append({src.table: t})
        for more in extra:
            for name, t in more.items():
                tables[name] = pa.concat_tables([tables[name], t]) if name in tables else t
        self._write(tables)
        if self.opts.until is not None and self.until_ns is None:
            hit = conditions.when(self.opts.until, tables)
            if hit is not None:
                self.until_ns = hit

    def _update_meta(self, bpf: Any, **extra: Any) -> None:
        lost = bpf.lost()
        if self.stacks is not None and self._live is not None:
            self.meta["stacks"] = self.stacks.meta(self._live.targets_at_start)
        self.meta.update(
            lost_events=sum(lost),
            lost_per_cpu=lost,
            rows={n: w.rows for n, w in self.writers.items()},
            context=self._context_health(),
            **extra,
        )
        schema.write_meta(self.opts.output, self.meta)

    # -- main -------------------------------------------------------------------------------
    def run(self, live: Live) -> RecordSummary:
        """Record with the probes start.go_live attached (they are detached here, always)."""
        bpf = live.bpf
        self._live = live
        done = False
        try:
            summary = self._record(bpf, live.plan, live)
            done = True
        finally:
            # the trace is complete and written: the slow kernel detach need not hold up
            # our exit (a forked child finishes it); on an error, detach here and now
            bpf.detach(background=done)
            bpf.close()
        if self.stacks is not None:
            # after the detach: reading binaries is the heaviest part of the stop, and no
            # probe should see it. The trace is already complete without it.
            self._extract_symbols()
            summary.stacks = self.meta.get("stacks")
            summary.rows = dict(self.meta.get("rows", summary.rows))
        return summary

    def _extract_symbols(self) -> None:
        """Write `binaries` and `symbols` (the symbol extract) into the finished trace."""
        assert self.stacks is not None
        t0 = time.monotonic()
        try:
            tables = self.stacks.extract_symbols()
        except Exception as e:
            self.stacks.symbols_note = f"not extracted: {type(e).__name__}: {e}"
        else:
            self.writers = {}
            self._write(tables)
            for w in self.writers.values():
                with contextlib.suppress(OSError):
                    w.close()
            for name, t in tables.items():
                self.meta.setdefault("rows", {})[name] = t.num_rows
            self.stacks.symbols_note = "extracted"
        self.meta["stacks"] = self.stacks.meta(self._live.targets_at_start if self._live else 0)
        self.meta["stacks"]["symbols_s"] = round(time.monotonic() - t0, 3)
        schema.write_meta(self.opts.output, self.meta)

    def _record(self, bpf: probes.Attached, plan: probes.ProbePlan, live: Live) -> RecordSummary:
        o = self.opts
        self._nice = _raise_priority()
        self.ring = RingReader(bpf.ring_fd, o.ring_pages * mmap.PAGESIZE)
        # the trace starts when the probes went live (start.go_live), before this module's
        # imports: the ring buffer kept every event of that time
        live_ns = live.live_ns
        attach_s = live.attach_s
        compile_s = bpf.compile_s
        self.meta = {
            "schema_version": schema.SCHEMA_VERSION,
            "tracer_version": __version__,
            "start_ns": live_ns,
            "end_ns": None,
            "complete": False,
            "probes": plan.concerns,
            "probes_unavailable": plan.unavailable,
            "tracepoints": plan.tracepoints,
            "cflags": plan.cflags,
            "attach_s": round(attach_s, 4),
            "compile_s": round(compile_s, 4),
            "bpf_loaded_from": bpf.source,
            **({"bpf_cache_note": bpf.cache_note} if bpf.cache_note else {}),
            "programs": probes.program_ids(bpf),
            "ring_pages": o.ring_pages,
            "target_command": list(o.command) or None,
            "until": str(o.until) if o.until else None,
            "duration_limit_s": o.duration,
            "recorder_argv": list(o.argv),
            "recorder_pid": os.getpid(),
            **procfs.machine_facts(),
        }
        if plan.concerns.get("stacks") == "attached":
            fd = bpf.map_fd("stack_traces")
            info = bpfcache.map_info(fd)
            self.stacks = stacks_collector.StackCollector(
                stack_fd=fd, value_size=int(info["value_size"]),
                sample_hz=plan.sample_hz, profile=o.profile,
                targets_fd=bpf.map_fd("stack_targets"),
                spill_fd=bpf.map_fd("stack_spill"), spill_base=int(info["max_entries"]))
        if plan.concerns.get("sched") == "attached":
            self._bpf = bpf  # sched.freeze reads its maps by fd, however they were loaded
            self.sched = sched_collector.SchedCollector(
                live_ns, sched_collector.threads_at_start(), sched_collector.irq_names())
            self.meta["sched"] = {**sched_collector.machine_facts(),
                                  "hooks": plan.sched_hooks}
        self._update_meta(bpf)
        self.stop.install()
        try:
            # journals are followed from BEFORE READY: READY lets systemd start k3s, and the
            # journal source reads from its own start second on (seen in a VM boot: started
            # after the snapshots below, it began 3 s after k3s had logged its lines)
            self._start_sources()
            o.notify(f"recording to {o.output} (probes live in {attach_s:.2f}s; Ctrl-C to stop)")
            host.sd_notify("READY=1\nSTATUS=recording")
            self._write({"snapshot": procfs.process_snapshot(live_ns),
                         "listeners": procfs.listener_snapshot(live_ns)})
            self._write_cgroup_snapshot(live_ns)
            child = self._start_command()
            if child is not None:
                self.meta["command_pid"] = child.pid
            reason, exit_code = self._loop(bpf, child, live_ns)
            if not self.stop.now:
                # events already in the buffer belong to the trace: drain them
                time.sleep(o.poll_interval)
                self._consume()
            self._process_batch(final=True)
        except BaseException:
            self._close(bpf, complete=False, stop_reason="error")
            raise
        finally:
            self.stop.restore()
        end_ns = self._close(bpf, complete=True, stop_reason=reason, command_exit=exit_code)
        return RecordSummary(
            output=o.output,
            duration_s=(end_ns - live_ns) / 1e9,
            rows={n: w.rows for n, w in self.writers.items()},
            lost_events=int(self.meta.get("lost_events", 0)),
            stacks=self.meta.get("stacks"),
            attach_s=attach_s,
            stop_reason=reason,
            command_exit=exit_code,
            unavailable=plan.unavailable,
        )

    def _write_cgroup_snapshot(self, ts_ns: int) -> None:
        from tracer.context import cgroups

        self._write({"cgroup": cgroups.snapshot(ts_ns)})

    def _start_sources(self) -> None:
        """Context on the same clock: netlink changes, followed journals."""
        from tracer.context import logs, netlink

        if self.opts.netlink:
            self.sources.append(netlink.NetlinkSource())
        for unit in self.opts.journal_units:
            self.sources.append(logs.JournalSource(
                unit, realtime_offset_ns=self.meta["realtime_offset_ns"]))
        for src in self.sources:
            src.start()

    def _context_health(self) -> dict[str, Any]:
        health: dict[str, Any] = {}
        for src in self.sources:
            name = getattr(src, "unit", None) or type(src).__name__
            info = {k: getattr(src, k) for k in ("problem", "overruns", "decode_errors")
                    if getattr(src, k, None)}
            if info:
                health[str(name)] = info
        return health

    def _start_command(self) -> subprocess.Popen[bytes] | None:
        o = self.opts
        if not o.command:
            return None
        from tracer.context import logs

        # NOTIFY_SOCKET is ours (the boot unit's READY=1); a traced k3s must not answer it
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        pipe = subprocess.PIPE if o.capture_output else None
        nice = self._nice

        def restore_priority() -> None:  # in the child: run CMD at the priority we were given
            os.setpriority(os.PRIO_PROCESS, 0, nice)

        # the stacks targets: the process forked here, and so its whole tree (stacks.bpf.c)
        targets = self._live.targets if self._live is not None else None
        seeding = targets.seeding() if targets is not None else contextlib.nullcontext()
        try:
            with seeding:
                child = subprocess.Popen(list(o.command), user=o.user, group=_group_of(o.user),
                                         extra_groups=[] if o.user else None, env=env,
                                         stdout=pipe, stderr=pipe, preexec_fn=restore_priority)
        except (OSError, KeyError, ValueError) as e:
            raise UsageError(f"cannot run {o.command[0]}: {e}") from None
        if o.capture_output:
            # each line is stamped on arrival and still reaches the terminal unchanged
            for stream, name in ((child.stdout, "stdout"), (child.stderr, "stderr")):
                assert stream is not None
                src = logs.CommandOutputSource(stream, name, True, pid=child.pid,
                                               realtime_offset_ns=self.meta["realtime_offset_ns"])
                src.start()
                self.sources.append(src)
        return child

    def _loop(self, bpf: Any, child: subprocess.Popen[bytes] | None,
              live_ns: int) -> tuple[str, int | None]:
        o = self.opts
        next_flush = time.monotonic() + o.flush_interval
        deadline = time.monotonic() + o.duration if o.duration else None
        exit_code: int | None = None
        while True:
            time.sleep(o.poll_interval)
            self._consume()
            now = time.monotonic()
            # also process when many records are buffered, so no single batch
            # keeps us away from the ring buffer long enough for it to fill
            if now >= next_flush or self.buffered >= 16384:
                self._process_batch()
                if now >= next_flush:
                    self._update_meta(bpf)
                    next_flush = now + o.flush_interval
            if self.stop.reason:
                reason = self.stop.reason
                break
            if self.until_ns is not None:
                reason = f"until {o.until}"
                break
            if deadline is not None and now >= deadline:
                reason = f"duration {o.duration:g}s"
                break
            if child is not None and child.poll() is not None:
                exit_code = child.returncode
                reason = "command exited"
                break
        if child is not None and child.poll() is None:
            exit_code = _stop_child(child, grace=0.5 if self.stop.now else 5.0)
        return reason, exit_code

    def _close(self, bpf: Any, *, complete: bool, stop_reason: str,
               command_exit: int | None = None) -> int:
        end_ns = time.monotonic_ns()
        for w in self.writers.values():
            with contextlib.suppress(OSError):
                w.close()
        self._update_meta(bpf, end_ns=end_ns, complete=complete, stop_reason=stop_reason,
                          command_exit=command_exit, until_ns=self.until_ns)
        return end_ns


def _merge(a: dict[str, pa.Table], b: dict[str, pa.Table]) -> dict[str, pa.Table]:
    for name, t in b.items():
        a[name] = pa.concat_tables([a[name], t]) if name in a else t
    return a


#: the collector's niceness while recording: draining the ring buffer must not starve when the
#: traced startup saturates the CPUs (a starved drain = a full buffer = lost events)
RECORDER_NICE = -10


def _raise_priority() -> int:
    """Raise our CPU priority; return the niceness we had (for the recorded command)."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, min(before, RECORDER_NICE))
    return before


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def _stop_child(child: subprocess.Popen[bytes], grace: float) -> int | None:
    """The recording is over: ask the command to stop (SIGTERM), then insist (SIGKILL)."""
    try:
        child.send_signal(signal.SIGTERM)
        return child.wait(grace)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()
