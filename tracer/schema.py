"""The trace format: the only contract between the recorder and everything that reads a trace.

A trace is a directory (root-only, mode 0700) holding:

* ``meta.json``: the metadata below, rewritten atomically (tmp + rename) at start, on every flush
  and at stop, so a recorder killed with SIGKILL leaves metadata up to its last flush
  (``complete`` stays false then).
* one Arrow IPC **stream** file per table (``<table>.arrows``). The stream format (not the file
  format) is used because it has no footer: every record batch flushed before a crash stays
  readable; a torn last batch is detected and reported by :func:`read_table`.

Times are ``CLOCK_MONOTONIC`` nanoseconds (what ``bpf_ktime_get_ns()`` and Python's
``time.monotonic_ns()`` return); ``meta["realtime_offset_ns"]`` converts them to wall time.
pids are global (root pid namespace) thread-group ids, tids are thread ids.

Bump ``SCHEMA_VERSION`` on any incompatible change; readers refuse a newer major version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import pyarrow as pa
import pyarrow.ipc as ipc

from tracer._errors import TraceError

SCHEMA_VERSION = "1.4"
META_FILE = "meta.json"
TABLE_SUFFIX = ".arrows"

# Plain strings (not dictionary-encoded): every batch of a stream then has the same type,
# and pyarrow.compute kernels work on them directly.
_str = pa.string()

#: One row per process lifecycle event.
#: kind: "fork" (new process: pid = child tgid, ppid = parent tgid, tid = child tid),
#:       "thread" (new thread: pid = tgid, tid = new tid, ppid = creating tid),
#:       "exec" (successful execve: pid = tgid after exec, tid = calling tid before exec,
#:               enter_ns = syscall entry, ts_ns = the moment the new image runs),
#:       "exec_failed" (execve returned an error: errno set, ts_ns = syscall return),
#:       "exit" (the whole thread group died: exit_code from exit_group(), or exit_signal
#:               when it was killed; both null when unknown).
#: tag: what an exec is known to be for: "module-loader" (modprobe, insmod: a kernel module
#:      load was asked for; the module tracepoints say which, where the kernel has them).
#:      Added in schema 1.1 (null when reading 1.0 traces).
PROCESS = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("kind", _str),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("ppid", pa.int32()),
        ("comm", _str),
        ("uid", pa.uint32()),
        ("cgroup_id", pa.uint64()),
        ("filename", pa.string()),
        ("argv", pa.list_(pa.string())),
        ("argv_truncated", pa.bool_()),
        ("enter_ns", pa.uint64()),
        ("errno", pa.int32()),
        ("exit_code", pa.int32()),
        ("exit_signal", pa.int32()),
        ("tag", pa.string()),
    ]
)

#: One row per socket syscall of interest.
#: kind: "connect" | "bind" | "listen" | "accept".
#: ts_ns = syscall entry, ret_ns/ret = syscall exit and its return value (negative errno;
#: accept: the new fd).
#: endpoint: canonical text, "127.0.0.1:6443", "[::1]:2379", "unix:/run/x.sock",
#: "unix:@abstract", "unix:" (unnamed), "inet:*:PORT" wildcard binds written as "0.0.0.0:PORT".
#: For connect, outcome is the REAL result, not the syscall's: Go connects are non-blocking
#: (syscall -> EINPROGRESS) and the answer arrives later as a TCP state change:
#:   "ok" | "refused" | "timeout" | "unreachable" | "reset" | "enoent" | "error"
#:   | "closed" (closed by the caller before an answer)
#:   | "pending" (no answer when recording stopped)
#: outcome_ns is when it was known; tcp tells whether a TCP handshake was seen.
#: For listen on TCP the port/addr come from the CLOSE->LISTEN transition.
#: For accept, endpoint is the listening socket it came in on and addr/port the peer.
SOCKET = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("kind", _str),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("comm", _str),
        ("uid", pa.uint32()),
        ("cgroup_id", pa.uint64()),
        ("fd", pa.int32()),
        ("family", _str),  # "inet" | "inet6" | "unix" | "other"
        ("addr", pa.string()),  # IP text or unix path ("@name" for abstract)
        ("port", pa.int32()),
        ("endpoint", pa.string()),
        ("ret", pa.int64()),
        ("ret_ns", pa.uint64()),
        ("tcp", pa.bool_()),
        ("outcome", _str),
        ("outcome_errno", pa.int32()),
        ("outcome_ns", pa.uint64()),
    ]
)

#: Kernel module events: kind "load" | "free" (module tracepoints), "init_module" |
#: "finit_module" (syscalls: ret = syscall return). Empty where the kernel has no modules.
MODULE = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("kind", _str),
        ("name", pa.string()),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("comm", _str),
        ("cgroup_id", pa.uint64()),
        ("ret", pa.int64()),
        #: init_module / finit_module rows: the syscall's entry (ts_ns is its return), so a
        #: load's duration is exact; null for load/free rows and in traces before 1.2
        ("enter_ns", pa.uint64()),
    ]
)

#: Processes alive when the probes attached (from /proc), so a late attach still has a tree.
#: start_ns is the process start converted to CLOCK_MONOTONIC (from /proc/PID/stat starttime).
SNAPSHOT = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("pid", pa.int32()),
        ("ppid", pa.int32()),
        ("comm", pa.string()),
        ("exe", pa.string()),
        ("argv", pa.list_(pa.string())),
        ("uid", pa.uint32()),
        ("start_ns", pa.uint64()),
        ("cgroup", pa.string()),
        ("cgroup_id", pa.uint64()),
    ]
)

#: Sockets already listening when the probes attached (from /proc/net), with their owner.
LISTENERS = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("endpoint", pa.string()),
        ("family", pa.string()),
        ("pid", pa.int32()),
        ("comm", pa.string()),
    ]
)

#: cgroup id -> path (and what it means), resolved at record time and for cgroups born during it.
CGROUP = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("cgroup_id", pa.uint64()),
        ("path", pa.string()),
        ("unit", pa.string()),  # systemd unit, e.g. "k3s.service"
        ("pod_uid", pa.string()),
        ("container_id", pa.string()),
    ]
)

#: Network plumbing from netlink: link/address/route changes.
NETLINK = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        # "link_new" | "link_del" | "addr_new" | "addr_del" | "route_new" | "route_del"
        ("kind", _str),
        ("ifindex", pa.int32()),
        ("ifname", pa.string()),
        ("link_kind", pa.string()),  # bridge, vxlan, veth, ...
        ("state", pa.string()),  # "up" | "down" | ...
        ("address", pa.string()),  # "10.42.0.1/24" for addresses, destination for routes
        ("netns", pa.string()),
    ]
)

#: Log lines (command output, journald, ingested files), parsed where the format is known.
#: ts_ns is the line's time on the trace clock; time_from says where it came from:
#:   "arrival" (read from the recorded command's pipe), "journal-monotonic" /
#:   "journal-realtime" (journald's receive time), "line-realtime" (the line's own stamp,
#:   converted with realtime_offset_ns: always for ingested files; for live lines when the stamp
#:   is sub-millisecond and consistent with receipt, see tracer.context.logs.rows.own_time_ns),
#:   "previous-line" / "next-line" (a line without a stamp, at its neighbour's time), "none".
#: received_ns: when a live line was received (our read of the pipe, or journald's receipt);
#:   null for ingested files. Added in schema 1.2 (null when reading older traces).
#: pid: the process that logged the line: journald's _PID, the line's own pid field (klog), or,
#:   for the recorded command's output, the command's pid.
LOG = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("source", _str),  # "stdout" | "stderr" | "journal:UNIT" | "file:NAME"
        ("level", _str),
        ("component", _str),
        ("message", pa.string()),
        ("pid", pa.int32()),
        ("raw", pa.string()),
        ("time_from", _str),  # "arrival" | "journal-monotonic" | "line-realtime" | ...
        ("received_ns", pa.uint64()),
    ]
)

#: Scheduler concern (schema 1.2; absent from older traces and from `record --no-sched`).
#: Each thread's time is tiled by rows without gaps or overlaps, from its first observation
#: to its death or the end of the recording (docs/sched.md): every row has
#: cpu_ns + runqueue_ns + io_ns + sleep_ns + other_ns + steal_ns == end_ns - start_ns.
#: state: "cpu" | "runqueue" | "io" | "sleep" | "other" for a row of one state, "mixed" for
#:   short intervals folded together in BPF (switches says how many; their order is lost).
#: origin: "bpf" (recorded), "proc" (before the thread's first event: its /proc state, read
#:   after the probes attached, is known to have held since), "unknown" (before the first event,
#:   state not known: other), "lost" (a hole left by lost records: other), "open" (the interval
#:   still open when the recording stopped, read from the BPF map).
#: pid: the thread group; null if it could not be learnt (a thread never seen on a CPU).
#: exited: the thread died at end_ns.
#: steal_ns (schema 1.4; null in older traces, read as 0): of the time the guest kernel had the
#:   thread on a CPU, what was not charged to it (its se.sum_exec_runtime did not move): the
#:   hypervisor ran something else on the vCPU (host steal), or interrupt time the kernel
#:   accounts apart. A "cpu" row may carry it beside cpu_ns (order unknown), so may a "mixed"
#:   row; cpu_ns is then what the thread ran, as its CPU clock counts it. Always 0 when the
#:   kernel's BTF gives no offset (meta sched.hooks.task_exec_offset absent).
SCHED = pa.schema(
    [
        ("start_ns", pa.uint64()),
        ("end_ns", pa.uint64()),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("state", _str),
        ("cpu_ns", pa.int64()),
        ("runqueue_ns", pa.int64()),
        ("io_ns", pa.int64()),
        ("sleep_ns", pa.int64()),
        ("other_ns", pa.int64()),
        ("switches", pa.int32()),
        ("exited", pa.bool_()),
        ("origin", _str),
        ("steal_ns", pa.int64()),
    ]
)

#: The wakeup that ended an idle stretch (io/sleep) of >= the recorder's long-interval
#: threshold (meta["sched"]["long_ns"], 1 ms), or the first wakeup of a thread asleep since
#: before the trace (idle_start_ns null). ts_ns = sched_waking (the waker's context).
#: waker: "process" (waker_pid/tid/comm; may be a thread of the same process) | "timer" |
#:   "network" | "disk" | "unknown" (idle task, another softirq or an unclassified irq: see
#:   irq / softirq).
WAKEUP = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("idle_start_ns", pa.uint64()),
        ("idle_state", _str),  # "io" | "sleep" | "other"
        ("waker", _str),
        ("waker_pid", pa.int32()),
        ("waker_tid", pa.int32()),
        ("waker_comm", pa.string()),
        ("irq", pa.int32()),
        ("irq_name", pa.string()),
        ("softirq", pa.string()),
        ("cpu", pa.int32()),
    ]
)

#: Disk: kind "request" (one block request, ts_ns = issue, end_ns = completion; pid/tid/comm
#: of the task current at issue, often a kworker or jbd2 rather than the writer; ret = error)
#: or "fsync" | "fdatasync" | "sync_file_range" (one syscall: ts_ns = entry, end_ns = exit,
#: ret = its return value).
BLOCKIO = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("end_ns", pa.uint64()),
        ("kind", _str),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("comm", pa.string()),
        ("dev", pa.string()),  # "MAJOR:MINOR"
        ("sector", pa.uint64()),
        ("bytes", pa.uint64()),
        ("rwbs", pa.string()),
        ("ret", pa.int64()),
    ]
)

#: --- Stacks and symbols (schema 1.3; absent from older traces and from `record --no-stacks`) ---
#: The contract shared by the collector (which writes them) and the analyzer (which reads them);
#: docs/stacks.md explains them for users.
#:
#: One row per distinct user stack the kernel's BPF_STACK_TRACE maps handed out. stack_id is the
#: map's id, or for a stack that collided there the spill map's id + the first map's size
#: (meta stacks.spill_base; unique within one trace, NOT across traces); frames are user-space
#: program counters (return addresses), innermost first, as the frame-pointer walk found them
#: (one frame where the code keeps no frame pointer: 32-bit ARM, C code inside cgo). A stack
#: id is a hash of the PCs only: the same id in two processes of different binaries means
#: different code, so PCs are symbolised per process through `mappings`.
STACKS = pa.schema(
    [
        ("stack_id", pa.int64()),
        ("frames", pa.list_(pa.uint64())),
    ]
)

#: One row per user stack taken: kind "cpu" (an on-CPU sample: perf_event CPU clock at
#: meta["stacks"]["sample_hz"], cpu set) or the kind of the event row it belongs to: "fork" |
#: "thread" (process table: the creating task at clone), "connect" | "bind" | "listen" |
#: "accept" (socket table), "fsync" | "fdatasync" | "sync_file_range" (blockio table),
#: "init_module" | "finit_module" (module table). An event's stack is the samples row with
#: the same tid, ts_ns and kind as the event's own row (the collector writes both from one
#: record, so the match is exact). stack_id null: no user stack could be taken (a kernel
#: thread, or the walk failed: stack_error is get_stackid's negative errno, e.g. -14 EFAULT,
#: -17 EEXIST a hash collision in both stack maps).
SAMPLES = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("kind", _str),
        ("pid", pa.int32()),
        ("tid", pa.int32()),
        ("cpu", pa.int32()),
        ("stack_id", pa.int64()),
        ("stack_error", pa.int32()),
    ]
)

#: The executable file mappings of a process whose stacks were taken (from /proc/PID/maps, read
#: when the process first showed up with a stack, and again after it execs): what turns a PC
#: of that process into (binary, address), address = pc - start + file_offset: the FILE-OFFSET
#: address, the same for every process that maps the binary wherever it is loaded (PIE or not),
#: and readable on a machine without the binary (tracer/symbols maps it to the ELF virtual
#: address through the binary's program headers when it resolves it).
#: binary: the key of the binary in `binaries` and `symbols`.
MAPPINGS = pa.schema(
    [
        ("ts_ns", pa.uint64()),
        ("pid", pa.int32()),
        ("start", pa.uint64()),
        ("end", pa.uint64()),
        ("file_offset", pa.uint64()),
        ("path", pa.string()),
        ("binary", pa.string()),
    ]
)

#: One row per distinct binary seen in `mappings`: its identity, so a trace can be symbolised
#: later and elsewhere, and a replaced binary is detected instead of misnamed.
#: binary: "gnu:<NT_GNU_BUILD_ID hex>" when the ELF has one, else "go:<Go build id>", else
#:   "file:<sha256 of the first and last MiB and the size>" (the key `mappings`/`symbols` use).
#: symbolizer: "gopclntab" | "symtab" | "dynsym" | "none"; problem: why symbols are partial or
#:   missing (no .gopclntab, not an ELF, unreadable, ...), else null.
BINARIES = pa.schema(
    [
        ("binary", pa.string()),
        ("path", pa.string()),
        ("gnu_build_id", pa.string()),
        ("go_build_id", pa.string()),
        ("go_version", pa.string()),
        ("size", pa.uint64()),
        ("mtime_ns", pa.int64()),
        ("arch", pa.string()),
        ("symbolizer", _str),
        ("problem", pa.string()),
    ]
)

#: The symbol extract: every distinct (binary, address) of the recorded stacks (address: the
#: file-offset address of `mappings`), resolved at record time (so the trace symbolises on any
#: machine, and after the binary changed). One row per frame at the address: depth 0 is the
#: innermost function (an inlined callee when the compiler inlined one), increasing outward to
#: the physical function holding the code.
#: Non-Go frames name the .symtab/.dynsym symbol; an address nothing names has no row (readers
#: print it as `binary-basename+0xOFFSET`).
SYMBOLS = pa.schema(
    [
        ("binary", pa.string()),
        ("address", pa.uint64()),
        ("depth", pa.int32()),
        ("function", pa.string()),
        ("file", pa.string()),
        ("line", pa.int32()),
    ]
)

TABLES: Mapping[str, pa.Schema] = {
    "process": PROCESS,
    "socket": SOCKET,
    "module": MODULE,
    "snapshot": SNAPSHOT,
    "listeners": LISTENERS,
    "cgroup": CGROUP,
    "netlink": NETLINK,
    "log": LOG,
    "sched": SCHED,
    "wakeup": WAKEUP,
    "blockio": BLOCKIO,
    "stacks": STACKS,
    "samples": SAMPLES,
    "mappings": MAPPINGS,
    "binaries": BINARIES,
    "symbols": SYMBOLS,
}

#: Keys every meta.json has; readers use .get() for everything else (forward compatible).
REQUIRED_META = ("schema_version", "tracer_version", "start_ns")


class Meta(TypedDict, total=False):
    """meta.json: every key the recorder writes (tracer/collector/record.py and
    procfs.machine_facts). Readers go through :class:`RecordedMeta`, never guess other names."""

    schema_version: str
    tracer_version: str
    #: CLOCK_MONOTONIC ns when the probes went live
    start_ns: int
    #: ns of the recorder's stop; null while recording (or after a SIGKILL)
    end_ns: int | None
    #: false until the recorder stopped cleanly
    complete: bool
    stop_reason: str
    #: the command `record -- CMD` ran, and its pid and exit status
    target_command: list[str] | None
    command_pid: int
    command_exit: int | None
    until: str | None
    duration_limit_s: float | None
    recorder_argv: list[str]
    recorder_pid: int
    #: concern -> "attached" | "unavailable: why"; concern -> why, for those not attached
    probes: dict[str, str]
    probes_unavailable: dict[str, str]
    tracepoints: list[str]
    cflags: list[str]
    attach_s: float
    compile_s: float
    ring_pages: int
    lost_events: int
    lost_per_cpu: list[int]
    rows: dict[str, int]
    #: context source -> its problems (journal unreadable, netlink overruns, ...)
    context: dict[str, Any]
    hostname: str
    kernel: str
    kernel_version: str
    machine: str
    boot_id: str | None
    clock: str
    #: wall time = monotonic ns + realtime_offset_ns
    realtime_offset_ns: int
    cpus: int | None
    #: the sched concern's parameters and health (record --sched; docs/sched.md): long_ns,
    #: bucket_ns, ncpu, end_ns, missed_switches, repairs
    sched: dict[str, Any]
    #: the stacks concern's parameters and health (docs/stacks.md; absent with --no-stacks):
    #: sample_hz, profile, target_exes, targets_running_at_start, processes_with_stacks,
    #: processes_unmapped, unmapped_pids, counts (samples by kind), errors (by errno name),
    #: stacks (distinct ids read), stack_lookups_failed, symbols ("extracted" | "not
    #: extracted: why"), symbols_s
    stacks: dict[str, Any]


def _meta_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


@dataclass(frozen=True)
class RecordedMeta:
    """The metadata an analysis reads, typed (from :class:`Meta`; absent keys are None)."""

    schema_version: str | None
    tracer_version: str | None
    start_ns: int
    end_ns: int | None
    complete: bool | None
    command_pid: int | None
    target_command: list[str] | None
    hostname: str | None
    kernel: str | None
    lost_events: int
    #: None when the metadata does not say (recorders before the key existed)
    probes_unavailable: dict[str, str] | None

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> RecordedMeta:
        cmd = meta.get("target_command")
        unavailable = meta.get("probes_unavailable")
        complete = meta.get("complete")
        return cls(
            schema_version=_meta_str(meta.get("schema_version")),
            tracer_version=_meta_str(meta.get("tracer_version")),
            start_ns=_meta_int(meta.get("start_ns")) or 0,
            end_ns=_meta_int(meta.get("end_ns")),
            complete=complete if isinstance(complete, bool) else None,
            command_pid=_meta_int(meta.get("command_pid")),
            target_command=[str(c) for c in cmd] if isinstance(cmd, list) else None,
            hostname=_meta_str(meta.get("hostname")),
            kernel=_meta_str(meta.get("kernel")),
            lost_events=int(meta.get("lost_events", 0) or 0),
            probes_unavailable={str(k): str(v) for k, v in unavailable.items()}
            if isinstance(unavailable, Mapping)
            else None,
        )


def _meta_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


@dataclass
class Trace:
    """A trace read from disk: metadata plus one Arrow table per known table name."""

    path: Path
    meta: dict[str, Any]
    tables: dict[str, pa.Table]
    #: table name -> description of a torn tail (crash mid-write) that was skipped
    truncated: dict[str, str] = field(default_factory=dict)
    #: table name -> why: a table the metadata says was recorded has no file (read as empty)
    missing: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> pa.Table:
        """The named table, empty (with its schema) when the trace has none."""
        t = self.tables.get(name)
        return t if t is not None else TABLES[name].empty_table()

    @property
    def lost_events(self) -> int:
        return self.recorded.lost_events

    @property
    def recorded(self) -> RecordedMeta:
        """The metadata, typed (the contract: :class:`Meta`)."""
        return RecordedMeta.of(self.meta)


def empty(name: str) -> pa.Table:
    return TABLES[name].empty_table()


def write_meta(trace_dir: Path, meta: Mapping[str, Any]) -> None:
    """Atomically replace meta.json (a crash never leaves a half-written file)."""
    tmp = trace_dir / (META_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, trace_dir / META_FILE)


def read_meta(trace_dir: Path) -> dict[str, Any]:
    path = trace_dir / META_FILE
    if not trace_dir.exists():
        raise TraceError(
            f"{trace_dir}: no such trace (record one with: sudo k3sprof record -o {trace_dir})"
        )
    if not trace_dir.is_dir():
        raise TraceError(
            f"{trace_dir}: not a trace directory (a trace is the directory `record -o` wrote)"
        )
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TraceError(f"{trace_dir}: not a k3sprof trace (no {META_FILE})") from None
    except PermissionError:
        raise TraceError(f"{path}: permission denied (traces are root-only: use sudo)") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}: corrupt metadata ({e.msg} at line {e.lineno})") from None
    if not isinstance(meta, dict) or any(k not in meta for k in REQUIRED_META):
        raise TraceError(f"{path}: not k3sprof trace metadata (missing {', '.join(REQUIRED_META)})")
    major = str(meta["schema_version"]).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise TraceError(
            f"{trace_dir}: trace schema {meta['schema_version']} is not readable by this "
            f"k3sprof (schema {SCHEMA_VERSION}); use the k3sprof version that recorded it"
        )
    return meta


def iter_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Record batches of one stream file; raises TraceError(torn=True) at a torn tail."""
    with pa.OSFile(str(path), "rb") as f:
        try:
            reader = ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError) as e:
            raise TornTail(f"unreadable stream header ({e})") from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError) as e:
                raise TornTail(str(e)) from None
            yield batch


class TornTail(TraceError):
    """A stream file ends in an incomplete message (the writer died mid-flush)."""


def read_table(path: Path, schema: pa.Schema) -> tuple[pa.Table, str | None]:
    """Read every complete batch of a stream file; return (table, torn-tail note or None)."""
    batches: list[pa.RecordBatch] = []
    note = None
    if path.stat().st_size == 0:
        return schema.empty_table(), "empty file (recorder stopped before its first flush)"
    try:
        for b in iter_batches(path):
            batches.append(b)
    except TornTail as e:
        note = f"torn tail after {len(batches)} complete batches: {e}"
    if not batches:
        return schema.empty_table(), note
    if not batches[0].schema.equals(schema, check_metadata=False):
        # tolerate extra/missing optional columns from other minor versions
        table = pa.Table.from_batches(batches)
        return _conform(table, schema, path), note
    return pa.Table.from_batches(batches, schema=schema), note


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                cols.append(col.cast(f.type) if not col.type.equals(f.type) else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise TraceError(
                    f"{path}: column {f.name} has type {col.type}, expected {f.type}"
                ) from None
        else:
            cols.append(pa.nulls(len(table), f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def load(trace_dir: str | os.PathLike[str]) -> Trace:
    """Read a whole trace directory. Missing tables read as empty (noted when the metadata says
    they were recorded); torn tails are noted."""
    d = Path(trace_dir)
    meta = read_meta(d)
    tables: dict[str, pa.Table] = {}
    truncated: dict[str, str] = {}
    missing: dict[str, str] = {}
    rows = meta.get("rows")
    recorded_rows: dict[str, Any] = rows if isinstance(rows, dict) else {}
    for name, schema in TABLES.items():
        p = d / (name + TABLE_SUFFIX)
        if not p.exists():
            if name in recorded_rows:
                missing[name] = (
                    f"{p.name} is missing, but the metadata says {recorded_rows[name]} rows "
                    "were recorded (read as empty)"
                )
            continue
        try:
            t, note = read_table(p, schema)
        except PermissionError:
            raise TraceError(f"{p}: permission denied (traces are root-only: use sudo)") from None
        except OSError as e:
            raise TraceError(f"{p}: cannot read ({e})") from None
        tables[name] = t
        if note:
            truncated[name] = note
    return Trace(path=d, meta=meta, tables=tables, truncated=truncated, missing=missing)


class StreamWriter:
    """Appends record batches to one table's stream file; each write is flushed to the OS."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._sink = pa.OSFile(str(path), "wb")
        os.close(fd)  # created with the right mode; OSFile reopens it
        self._writer = ipc.new_stream(self._sink, schema)
        self.schema = schema
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._writer.write_table(table)
        self._sink.flush()
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._sink.close()
