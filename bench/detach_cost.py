"""What one detach costs on this kernel: a perf-event tracepoint against a raw tracepoint (the
figure behind issue 24's stop goal, docs/bench.md "Stop").

    sudo .venv/bin/python -m bench.detach_cost [--rounds 3]

Loads, with BCC, trivial programs (`return 0`) on the syscall tracepoints the recorder uses
(enter and exit of each, as perf-event tracepoints: BCC's TRACEPOINT_PROBE), then on the raw
tracepoints a converted recorder would use (raw_syscalls' sys_enter/sys_exit and the
non-syscall events, as BPF raw tracepoint links: RAW_TRACEPOINT_PROBE), and times BCC's
cleanup, which closes them one by one. A perf-event tracepoint's last close waits for an RCU
grace period in the kernel (perf_trace_event_unreg -> tracepoint_synchronize_unregister); a raw
tracepoint link's release frees its probe after a grace period without waiting for it. Only
events this kernel has are used (a kernel without modules has no module tracepoints). Prints
one JSON object: per kind, the events, and the ms per detach of each round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench import load_avg, log

TRACEFS = Path("/sys/kernel/tracing/events")
#: the recorder's syscall tracepoints (bpf/*.c), each with its enter and exit
SYSCALLS = ("connect", "bind", "listen", "accept4", "accept", "execve", "execveat",
            "exit_group", "init_module", "finit_module", "fsync", "fdatasync", "sync_file_range")
#: what a recorder on raw tracepoints would attach instead (category, event)
RAW = (("raw_syscalls", "sys_enter"), ("raw_syscalls", "sys_exit"),
       ("sched", "sched_process_exec"), ("sched", "sched_process_exit"),
       ("task", "task_newtask"), ("signal", "signal_generate"), ("module", "module_load"),
       ("module", "module_free"), ("cgroup", "cgroup_mkdir"), ("sock", "inet_sock_set_state"),
       ("sock", "inet_sk_error_report"), ("block", "block_rq_issue"),
       ("block", "block_rq_complete"))


def _has(category: str, event: str) -> bool:
    return (TRACEFS / category / event).is_dir()


def _time_cleanup(src: str) -> float:
    from bcc import BPF  # the OS package (python3-bpfcc); root only

    b = BPF(text=src)
    t = time.monotonic()
    b.cleanup()
    return time.monotonic() - t


def measure(rounds: int = 3) -> dict[str, object]:
    perf = [f"sys_{end}_{s}" for s in SYSCALLS for end in ("enter", "exit")
            if _has("syscalls", f"sys_{end}_{s}")]
    raw = [e for c, e in RAW if _has(c, e)]
    kinds = {
        "perf-event tracepoint": (perf, "\n".join(
            f"TRACEPOINT_PROBE(syscalls, {e}) {{ return 0; }}" for e in perf)),
        "raw tracepoint": (raw, "\n".join(f"RAW_TRACEPOINT_PROBE({e}) {{ return 0; }}"
                                          for e in raw)),
    }
    out: dict[str, object] = {"load": load_avg(), "rounds": rounds}
    for kind, (events, src) in kinds.items():
        per = []
        for i in range(rounds):
            dt = _time_cleanup(src)
            per.append(round(1000 * dt / len(events), 3))
            log(f"detach_cost: {len(events)} {kind}s detached in {1000 * dt:.1f} ms "
                f"(round {i + 1}/{rounds})")
        out[kind] = {"events": events, "ms_per_detach": per,
                     "median_ms": statistics.median(per)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    json.dump(measure(a.rounds), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
