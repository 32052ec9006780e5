"""Tracing overhead on a startup-like burst: untraced vs k3sprof vs bpftrace vs strace -f vs
`perf trace` (what a user reaches for when bpftrace cannot start: the same syscalls).

    sudo .venv/bin/python -m bench.overhead [--rounds 9] [--scale 2.0]

Each traced run is paired with an untraced run right before it (A B A C A D, the order of
the tracers rotating every round), and the ratio traced/untraced is taken per pair: the box
is shared and noisy, and a neighbour's test run shifts both halves of a pair alike.

The burst times itself (bench/workload_burst.py, first to last operation), and every
tracer is live before the burst starts (k3sprof: its `recording` line; bpftrace: the
`READY` line of its BEGIN probe, which runs once every probe is attached; strace starts the
burst itself, before its timer),
so attach time is never counted as overhead: attach is measured on its own (bench.attach).

Each tracer must also SEE the burst (ground truth, not self-agreement): k3sprof's trace and
bpftrace's output are checked for every connect of the burst's pid, strace's and perf trace's
for the syscall lines of the burst's pid (and the helpers' successful execs). A run that
missed events is flagged in the results, not silently averaged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BENCH, Recorder, cpu_seconds, foreign_tracers, load_avg, log, run_json, summary

WORKLOAD = BENCH / "workload_burst.py"
TRACERS = ("k3sprof", "bpftrace", "strace", "perf-trace")
STRACE_SYSCALLS = "execve,connect,bind,listen,accept4"

#: The same tracepoints the recorder uses, each printing what a bpftrace user would print
#: for it (per-event printf, the usual one-liner style). Not a straw man: enter/exit pairs are
#: joined in maps like the recorder does, and the TCP state changes are filtered to TCP.
BPFTRACE_SCRIPT = r"""
BEGIN { printf("READY\n"); }
tracepoint:task:task_newtask {
  printf("fork %d %d %s %d %x\n", pid, tid, comm, args->pid, args->clone_flags); }
tracepoint:syscalls:sys_enter_execve {
  printf("execve %d %s %s ", pid, comm, str(args->filename)); join(args->argv); }
tracepoint:syscalls:sys_exit_execve /args->ret < 0/ {
  printf("execfail %d %d\n", pid, args->ret); }
tracepoint:sched:sched_process_exec {
  printf("exec %d %d %s\n", pid, args->old_pid, str(args->filename)); }
tracepoint:sched:sched_process_exit {
  printf("exit %d %d %s %d\n", pid, tid, comm, @code[pid]); delete(@code[pid]); }
tracepoint:syscalls:sys_enter_exit_group { @code[pid] = args->error_code; }
tracepoint:syscalls:sys_enter_connect {
  @t[tid] = nsecs; @sa[tid] = buf(args->uservaddr, 28); }
tracepoint:syscalls:sys_exit_connect /@t[tid]/ {
  printf("connect %d %d %s %d %d %r\n", pid, tid, comm, args->ret, @t[tid], @sa[tid]);
  delete(@t[tid]); delete(@sa[tid]); }
tracepoint:syscalls:sys_enter_bind { @t[tid] = nsecs; @sa[tid] = buf(args->umyaddr, 28); }
tracepoint:syscalls:sys_exit_bind /@t[tid]/ {
  printf("bind %d %d %s %d %r\n", pid, tid, comm, args->ret, @sa[tid]);
  delete(@t[tid]); delete(@sa[tid]); }
tracepoint:syscalls:sys_exit_listen { printf("listen %d %d %s %d\n", pid, tid, comm, args->ret); }
tracepoint:syscalls:sys_exit_accept4 /args->ret >= 0/ {
  printf("accept %d %d %s %d\n", pid, tid, comm, args->ret); }
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  printf("tcpstate %d %llx %d %d %d %d\n", pid, args->skaddr, args->oldstate, args->newstate,
         args->sport, args->dport); }
tracepoint:sock:inet_sk_error_report /args->protocol == 6/ {
  printf("tcperr %d %d %d\n", args->error, args->sport, args->dport); }
"""


#: bpftrace's default perf buffer (64 pages per CPU) drops events on this burst; give it the
#: recorder's default ring size (4096 pages = 16 MiB), split over the CPUs, for a fair fight
BPFTRACE_ENV = {**os.environ,
                "BPFTRACE_PERF_RB_PAGES": str(4096 // max(1, os.cpu_count() or 1))}


def burst_cmd(scale: float) -> list[str]:
    return [sys.executable, str(WORKLOAD), "--scale", str(scale)]


#: bursts run at once: 1 (the default: a core stays idle for the collector) or one per core
#: (`--parallel N`, the all-cores-busy variant: nothing idle to hide the collector in)
PARALLEL = 1


def run_burst(scale: float) -> dict[str, Any]:
    """PARALLEL bursts started together; elapsed = the slowest, CPU and counts summed."""
    if PARALLEL == 1:
        res = run_json(burst_cmd(scale))
        res["pids"] = [res["pid"]]
        return res
    procs = [subprocess.Popen(burst_cmd(scale), stdout=subprocess.PIPE, text=True)
             for _ in range(PARALLEL)]
    outs = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"burst exited {p.returncode}")
        outs.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1]))
    res = dict(outs[0])
    res["pids"] = [o["pid"] for o in outs]
    res["elapsed_s"] = max(o["elapsed_s"] for o in outs)
    res["cpu_s"] = sum(o["cpu_s"] for o in outs)
    res["expected_syscalls"] = {k: v * PARALLEL for k, v in outs[0]["expected_syscalls"].items()}
    return res


def run_untraced(tmp: Path, scale: float) -> dict[str, Any]:
    return run_burst(scale)


SETTLE_S = 1.5


def run_k3sprof(tmp: Path, scale: float) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    from tracer import schema

    out = tmp / "k3sprof.trace"
    rec = Recorder.start(out)
    cpu_live = cpu_seconds(rec.proc.pid)
    try:
        # let the recorder finish what it does once after going live (snapshots, netlink
        # setup) so the window below holds the burst's work only
        time.sleep(SETTLE_S)
        cpu0 = cpu_seconds(rec.proc.pid)
        t0 = time.monotonic()
        res = run_burst(scale)
        # the burst's last events are decoded and written within a flush interval (1 s)
        time.sleep(SETTLE_S)
        cpu1 = cpu_seconds(rec.proc.pid)
        window = time.monotonic() - t0
    finally:
        _, rusage = rec.stop()
    # recorder CPU attributable to the burst: the window around it (it includes the idle
    # recorder's own polling, ~1% of a core, and, recording system-wide, other processes'
    # events in the window: on a shared box that is an upper bound)
    res["collector_cpu_s"] = cpu1 - cpu0
    res["collector_window_s"] = window
    # and everything from `recording` to exit: + the post-live setup and the stop
    res["collector_cpu_total_s"] = rusage.ru_utime + rusage.ru_stime - cpu_live
    trace = schema.load(out)
    sock = trace.table("socket")
    mine = sock.filter(pc.is_in(sock["pid"], pa.array(res["pids"], pa.int32())))
    seen = {k: int(pc.sum(pc.equal(mine["kind"], k)).as_py() or 0)
            for k in ("connect", "accept", "bind", "listen")}
    proc = trace.table("process")
    forks = proc.filter(pc.and_(pc.equal(proc["kind"], "fork"),
                                pc.is_in(proc["ppid"], pa.array(res["pids"], pa.int32()))))
    execs = proc.filter(pc.and_(pc.equal(proc["kind"], "exec"),
                                pc.is_in(proc["pid"], forks["pid"])))
    seen["execve"] = execs.num_rows
    res["tracer_seen"] = seen
    res["tracer_lost"] = trace.lost_events
    return res


def _unlimited_memlock() -> None:
    """bpftrace 0.17 fails to attach under a small RLIMIT_MEMLOCK (it cannot raise it itself
    on every kernel); BCC raises its own. Give both the same footing."""
    import resource

    # a hard limit we may not raise (no CAP_SYS_RESOURCE) stays: bpftrace may then fail
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_MEMLOCK,
                           (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def run_bpftrace(tmp: Path, scale: float) -> dict[str, Any]:
    script = tmp / "k3sprof-equiv.bt"
    script.write_text(BPFTRACE_SCRIPT)
    out = tmp / "bpftrace.out"
    err = tmp / "bpftrace.err"
    out.unlink(missing_ok=True)  # a previous run's READY line must not count
    with err.open("w") as ef:
        bt = subprocess.Popen(["bpftrace", "-o", str(out), str(script)],
                              preexec_fn=_unlimited_memlock,
                              stdout=subprocess.DEVNULL, stderr=ef, env=BPFTRACE_ENV)
    try:
        deadline = time.monotonic() + 60
        # BEGIN runs once every probe is attached: its READY line means live
        while not (out.exists() and "READY" in out.read_text(errors="replace")[:200]):
            if bt.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bpftrace did not attach: {err.read_text()[-500:]}")
            time.sleep(0.02)
        res = run_burst(scale)
        _wait_quiet(out)  # let it print what is still buffered (k3sprof drains on stop too)
    finally:
        bt.send_signal(signal.SIGINT)
        bt.wait(60)
    text = out.read_text(errors="replace")
    pids = "|".join(str(p) for p in res["pids"])
    seen = {k: len(re.findall(rf"^{k} (?:{pids}) ", text, re.M))
            for k in ("connect", "accept", "bind", "listen")}
    seen["execve"] = len(re.findall(r"^execve \d+ \S+ /bin/true /bin/true --burst-helper", text,
                                    re.M))
    res["tracer_seen"] = seen
    lost = re.findall(r"Lost (\d+) events", text + err.read_text(errors="replace"))
    res["tracer_lost"] = sum(int(n) for n in lost)
    return res


def _wait_quiet(path: Path, settle: float = 0.3, limit: float = 15.0) -> None:
    """Wait until a tracer's output file stops growing (it is still printing the burst)."""
    deadline = time.monotonic() + limit
    size = -1
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now == size:
            return
        size = now
        time.sleep(settle)


def run_strace(tmp: Path, scale: float) -> dict[str, Any]:
    if PARALLEL != 1:
        raise RuntimeError("strace runs only in the one-burst variant")
    out = tmp / "strace.out"
    res = run_json(["strace", "-f", "-qq", "-o", str(out), "-e", f"trace={STRACE_SYSCALLS}",
                    *burst_cmd(scale)])
    text = out.read_text(errors="replace")
    pid = res["pid"]
    seen = {k: len(re.findall(rf"^{pid} +{k}4?\(", text, re.M))
            for k in ("connect", "accept", "bind", "listen")}
    seen["execve"] = len(re.findall(r'execve\("/bin/true"', text))
    res["tracer_seen"] = seen
    res["tracer_lost"] = 0
    return res


def run_perf_trace(tmp: Path, scale: float) -> dict[str, Any]:
    """`perf trace` (perf's strace-like syscall tracer, on the raw syscall tracepoints and a
    perf ring per CPU) of the burst and its children, the same syscalls as strace."""
    if PARALLEL != 1:
        raise RuntimeError("perf trace runs only in the one-burst variant")
    out = tmp / "perf-trace.out"
    res = run_json(["perf", "trace", "-o", str(out), "-e", STRACE_SYSCALLS, *burst_cmd(scale)])
    text = out.read_text(errors="replace")
    pid = res["pid"]
    # "  0.123 ( 0.004 ms): python/1234 connect(fd: 3, ...) = -1 ENOENT ...": one line per
    # call: whole, or its entry alone ending in "...", or its exit alone as
    # "python/1234  ... [continued]: connect()) = 0" (checked on a scale-2 burst: 8,000
    # accept4 lines for 8,000 accepts, 7,988 whole, 7 entries, 5 exits). A helper's exec
    # counts by its pid (comm "true" after the exec, ":PID" before perf knew it)
    seen = {k: len(re.findall(rf"\S+/{pid} +(?:\.\.\. \[continued\]: )?{k}4?\(", text))
            for k in ("connect", "accept", "bind", "listen")}
    seen["execve"] = len(set(re.findall(r"(?:true|:\d+)/(\d+) +(?:execve\(|\.\.\. "
                                        r"\[continued\]: execve\(\))", text)))
    res["tracer_seen"] = seen
    res["tracer_lost"] = sum(int(n) for n in re.findall(r"LOST (\d+) events", text))
    return res


RUNNERS = {"untraced": run_untraced, "k3sprof": run_k3sprof, "bpftrace": run_bpftrace,
           "strace": run_strace, "perf-trace": run_perf_trace}


def complete(res: dict[str, Any]) -> bool:
    """Did the tracer see every syscall of the burst that it is meant to see?"""
    exp = res["expected_syscalls"]
    seen = res.get("tracer_seen", {})
    return all(seen.get(k, 0) >= exp[k] for k in ("connect", "accept", "bind", "listen", "execve"))


def available(tracer: str) -> str | None:
    """None if the tracer can run here, else why not."""
    if tracer == "k3sprof":
        return None
    exe = "perf" if tracer == "perf-trace" else tracer
    return None if shutil.which(exe) else f"{exe} not installed"


def measure(rounds: int = 9, scale: float = 2.0,
            tracers: tuple[str, ...] = TRACERS, parallel: int = 1) -> dict[str, Any]:
    global PARALLEL
    PARALLEL = parallel
    if parallel != 1:
        tracers = tuple(t for t in tracers if t not in ("strace", "perf-trace"))
    log(f"overhead: {rounds} rounds, burst scale {scale} x {parallel} at once, "
        f"load {load_avg()}")
    skipped = {t: why for t in tracers if (why := available(t))}
    active = [t for t in tracers if t not in skipped]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        tmp = Path(tmpd)
        run_burst(scale)  # warm the page cache and the interpreter's .pyc
        for r in range(rounds):
            order = active[r % len(active):] + active[: r % len(active)]
            for tracer in order:
                if tracer in skipped:
                    continue
                foreign = foreign_tracers()
                base = RUNNERS["untraced"](tmp, scale)
                try:
                    traced = RUNNERS[tracer](tmp, scale)
                except RuntimeError as e:  # e.g. bpftrace cannot attach here: say so, go on
                    skipped[tracer] = str(e).strip().splitlines()[0][:200]
                    log(f"  {tracer}: skipped from now on: {skipped[tracer]}")
                    continue
                foreign += foreign_tracers()
                ratio = traced["elapsed_s"] / base["elapsed_s"]
                runs.append({
                    "round": r, "tracer": tracer, "load": load_avg(),
                    "untraced_s": base["elapsed_s"], "traced_s": traced["elapsed_s"],
                    "ratio": ratio, "complete": complete(traced),
                    "cpu_ratio": traced["cpu_s"] / base["cpu_s"],
                    "seen": traced.get("tracer_seen"), "lost": traced.get("tracer_lost"),
                    "foreign_tracers": sorted(set(foreign)),
                    "collector_cpu_s": traced.get("collector_cpu_s"),
                    "collector_cpu_total_s": traced.get("collector_cpu_total_s"),
                })
                log(f"  round {r} {tracer:8} {base['elapsed_s']:.3f}s -> "
                    f"{traced['elapsed_s']:.3f}s  x{ratio:.3f} (cpu x{runs[-1]['cpu_ratio']:.3f})"
                    + ("" if runs[-1]["complete"] else f"  MISSED EVENTS {traced['tracer_seen']}")
                    + (f"  (another tracer was running: {foreign[0]})" if foreign else ""))
        expected = base["expected_syscalls"]
    result: dict[str, Any] = {"rounds": rounds, "scale": scale, "parallel": parallel,
                              "expected_syscalls": expected,
                              "skipped": skipped, "runs": runs,
                              "tracers": summarize(runs, [t for t in active
                                                          if t not in skipped])}
    return result


def summarize(runs: list[dict[str, Any]], tracers: list[str]) -> dict[str, Any]:
    """Per tracer: ratios over the clean pairs (if >= 3), completeness over EVERY run."""
    out: dict[str, Any] = {}
    for t in tracers:
        every = [x for x in runs if x["tracer"] == t]
        clean = [x for x in every if not x["foreign_tracers"]]
        # pairs during which someone else's tracer was attached are not "untraced" vs
        # "traced": summarise the clean pairs when there are enough of them
        mine = clean if len(clean) >= 3 else every
        out[t] = {
            "pairs_used": "clean" if mine is clean else "all (too few clean pairs)",
            "clean_pairs": len(clean),
            "ratio": summary([x["ratio"] for x in mine]),
            "cpu_ratio": summary([x["cpu_ratio"] for x in mine]),
            # noise on a shared box only ever ADDS time: the ratio of the fastest runs is
            # the least disturbed estimate of what the tracer itself costs
            "best_ratio": (min(x["traced_s"] for x in mine)
                           / min(x["untraced_s"] for x in mine)),
            "traced_s": summary([x["traced_s"] for x in mine]),
            "untraced_s": summary([x["untraced_s"] for x in mine]),
            # seeing every event is not a timing question: every run counts
            "complete_runs": sum(x["complete"] for x in every),
            "runs": len(every),
            "collector_cpu_s": (summary([x["collector_cpu_s"] for x in mine])
                                if t == "k3sprof" else None),
            "collector_cpu_total_s": (summary([x["collector_cpu_total_s"] for x in mine])
                                      if t == "k3sprof" else None),
            "load": summary([x["load"] for x in mine]),
            "lost": sum(x["lost"] or 0 for x in every),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--scale", type=float, default=2.0)
    ap.add_argument("--tracers", default=",".join(TRACERS))
    ap.add_argument("--parallel", type=int, default=1,
                    help="bursts at once (os.cpu_count() = the all-cores-busy variant)")
    args = ap.parse_args(argv)
    res = measure(args.rounds, args.scale, tuple(args.tracers.split(",")), args.parallel)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
