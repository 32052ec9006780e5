"""Benchmarks (scripts, not tests): `python -m bench.run`, or `make bench`. See docs/bench.md."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
#: the recorder exactly as a user runs it (same interpreter as the bench: the project venv)
K3SPROF = [sys.executable, "-m", "tracer"]
#: the source tree whose `tracer` and `bpf/` are benchmarked (`python -m tracer` run from
#: there imports its copy first): set K3SPROF_BENCH_TREE to measure a prototype in a scratch copy
TREE = Path(os.environ.get("K3SPROF_BENCH_TREE", str(ROOT)))


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the final table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def summary(values: Sequence[float]) -> dict[str, float]:
    """median, min, max (and n) of a series; the bench reports medians because the box is shared."""
    v = sorted(values)
    if not v:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1]}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(rest[11]) + int(rest[12])) / ticks  # fields 14, 15 of proc(5)


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set of a live process's own memory (VmHWM, KiB); 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0  # exited, or a zombie whose memory is already released


@dataclass
class Recorder:
    """A `k3sprof record` running in the background, started and stopped like a user would."""

    out: Path
    proc: subprocess.Popen[str]
    spawn_ns: int
    live_ns: int
    lines: list[str] = field(default_factory=list)
    #: the recorder's own peak RSS in KiB (VmHWM), read from /proc until it exits; set by stop()
    peak_rss_kb: int = 0
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, out: Path, *extra: str, timeout: float = 60.0,
              env: dict[str, str] | None = None) -> Recorder:
        """Start a system-wide recording and return once its `recording` line is printed."""
        spawn_ns = time.monotonic_ns()
        proc = subprocess.Popen([*K3SPROF, "record", "-o", str(out), "--force", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                cwd=TREE, env={**os.environ, **env} if env else None)
        assert proc.stderr is not None
        live = threading.Event()
        rec = cls(out=out, proc=proc, spawn_ns=spawn_ns, live_ns=0)

        def read(stream: IO[str]) -> None:
            for line in stream:
                rec.lines.append(line.rstrip("\n"))
                if not live.is_set() and "recording" in line:
                    rec.live_ns = time.monotonic_ns()
                    live.set()
            live.set()

        rec._reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
        rec._reader.start()
        if not live.wait(timeout) or rec.live_ns == 0:
            rec.proc.kill()
            rec.proc.wait()
            raise RuntimeError("k3sprof record never went live: " + " | ".join(rec.lines[-5:]))
        return rec

    def stop(self, timeout: float = 60.0) -> tuple[float, Any]:
        """SIGINT (Ctrl-C), wait; returns (seconds to exit, rusage of the recorder).

        The rusage's ru_maxrss is NOT the recorder's own peak: Linux carries a process's high
        water mark across fork and exec, so a recorder spawned by a bench that has grown to 2 GB
        (a big trace loaded in an earlier phase) reports 2 GB. `peak_rss_kb` is the recorder's
        own mm's VmHWM instead, read every 10 ms until its memory is gone (a lower bound by at
        most the last 10 ms of its exit)."""
        t0 = time.monotonic()
        self.peak_rss_kb = max(self.peak_rss_kb, vm_hwm_kb(self.proc.pid))
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        while True:
            self.peak_rss_kb = max(self.peak_rss_kb, vm_hwm_kb(self.proc.pid))
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                stop_s = time.monotonic() - t0  # the recorder has exited
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("k3sprof record did not stop after SIGINT")
            time.sleep(0.01)
        if self._reader is not None:
            self._reader.join(5)
        wait_detached()
        if self.proc.returncode != 0:
            raise RuntimeError(f"k3sprof record exited {self.proc.returncode}: "
                               + " | ".join(self.lines[-5:]))
        return stop_s, rusage


DETACH_COMM = "k3sprof-detach"


def _detach_children() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == DETACH_COMM:
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def wait_detached(limit: float = 10.0) -> None:
    """A stopped recorder leaves a child (comm k3sprof-detach) that finishes detaching its
    tracepoints (~1 s); until it exits the probes still run. Wait for it, so the next
    "untraced" run is untraced."""
    deadline = time.monotonic() + limit
    while _detach_children() and time.monotonic() < deadline:
        time.sleep(0.05)


def run_json(cmd: Sequence[str], **kw: Any) -> dict[str, Any]:
    """Run a bench helper that prints one JSON line on stdout; fail loudly otherwise."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}: {p.stderr.strip()[-500:]}")
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1]
    out: dict[str, Any] = json.loads(line)
    return out


def foreign_tracers(mine: Sequence[int] = ()) -> list[str]:
    """Other tracers running now (another engineer's `k3sprof record`, a bpftrace, a strace).

    They attach probes system-wide too, so an "untraced" run is not untraced while they
    live: runs are tagged with this and the summaries prefer the clean ones.
    """
    found = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in mine or int(d.name) == me:
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if not words:
            continue
        prog = os.path.basename(words[0])
        with contextlib.suppress(OSError):
            if (d / "comm").read_text().strip() == DETACH_COMM:
                continue  # a stopped recorder finishing its detach (waited for in stop())
        if prog in ("bpftrace", "strace") or ("record" in words and any(
                w.endswith("k3sprof") or w == "tracer" for w in words[:3])):
            found.append(f"{d.name}:{' '.join(words[:4])}")
    return found


def is_root() -> bool:
    return os.geteuid() == 0
