"""`boot run`, what the unit's ExecStart runs: record this boot into a new run directory, then
analyze, report and rotate.

The recorder is ``k3sprof record`` in a child process (its own session) until the end condition,
the timeout or SIGTERM (``systemctl stop``); it inherits NOTIFY_SOCKET and sends READY=1 itself
once its probes are live. A failing analysis or report keeps the trace.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tracer import __version__, host
from tracer._errors import PrivilegeError, TracerError
from tracer.boot.options import BootOptions
from tracer.boot.runs import (
    ANALYSIS_FILE,
    REPORT_FILE,
    TRACE_SUBDIR,
    new_run_dir,
    rotate,
    write_run_file,
)
from tracer.boot.unit import K3S_UNITS

#: The recorder gets --duration TIMEOUT; if it has not stopped GRACE_S later it is stopped.
GRACE_S = 30
REPORT_TIMEOUT_S = 300

Log = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)


@dataclass
class Step:
    """An external command run by `boot run` and what came of it."""

    argv: list[str]
    rc: int | None = None
    error: str | None = None
    seconds: float | None = None


@dataclass
class RunResult:
    run_dir: Path
    trace_dir: Path
    boot_id: str
    record: Step
    report: Step | None
    analysis: Step | None
    stopped_by: (
        str  # "recorder" (end condition, --duration or its own failure) | "signal" | "backstop"
    )
    rotated: list[Path]

    @property
    def ok(self) -> bool:
        return self.record.rc == 0 and self.record.error is None


def tracer_argv() -> list[str]:
    """How `boot run` calls the other k3sprof commands: the same interpreter and package."""
    return [sys.executable, "-m", "tracer"]


def _last_line(text: str) -> str:
    # click and k3sprof both end a failure with the one line that says what went wrong
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


@contextmanager
def _forward_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_step(
    argv: list[str], timeout_s: float, log: Log, what: str, json_to: Path | None = None
) -> Step:
    """Run one post-recording step; with json_to, its stdout is kept there when it is JSON."""
    step = Step(argv)
    t0 = time.monotonic()
    why = ""
    try:
        with open(json_to, "wb") if json_to else open(os.devnull, "wb") as out:
            r = subprocess.run(
                argv, stdout=out, stderr=subprocess.PIPE, timeout=timeout_s, check=False
            )
        step.rc = r.returncode
        why = _last_line(r.stderr.decode(errors="replace"))
        # analyze says "end milestone not reached" with a non-zero status AND a full answer
        # (end_reached: false): a boot stopped early still gets its analysis.
        if r.returncode != 0 and not (json_to is not None and _is_json(json_to)):
            step.error = f"exit {r.returncode}: {why or 'no message'}"
    except subprocess.TimeoutExpired:
        step.error = f"did not finish in {timeout_s:.0f} s"
    except OSError as e:
        step.error = str(e)
    step.seconds = round(time.monotonic() - t0, 3)
    if step.error:
        log("warning", f"{what} failed ({step.error}); the trace is kept")
        if json_to is not None:
            json_to.unlink(missing_ok=True)
    else:
        note = f" (exit {step.rc}: {why})" if step.rc else ""
        log("info", f"{what} written in {step.seconds:.1f} s{note}")
    return step


def _analyze_and_report(cmd: Sequence[str], run_dir: Path, log: Log) -> tuple[Step, Step]:
    """RUN/report.html and RUN/analysis.json from RUN/trace: the ONE place `boot run` analyzes.

    MERGE POINT: today this re-enters the CLI twice (`k3sprof report`, `k3sprof analyze --json`),
    so the trace is loaded and analyzed twice, in two more interpreters. Once one in-process
    load -> analyze exists (issue 12), replace both subprocesses here with one in-process
    analysis that renders both files; keep the (report, analysis) Steps so run.json and
    `boot status` stay as they are. Each step must still fail alone: a failing report keeps the
    analysis and the trace.
    """
    trace_dir = run_dir / TRACE_SUBDIR
    report = _run_step(
        [*cmd, "report", str(trace_dir), "-o", str(run_dir / REPORT_FILE)],
        REPORT_TIMEOUT_S,
        log,
        "report",
    )
    analysis = _run_step(
        [*cmd, "analyze", str(trace_dir), "--json"],
        REPORT_TIMEOUT_S,
        log,
        "analysis",
        json_to=run_dir / ANALYSIS_FILE,
    )
    return report, analysis


def _is_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def run(
    opts: BootOptions,
    *,
    log: Log,
    tracer_cmd: Sequence[str] | None = None,
    boot_id: str | None = None,
    now: dt.datetime | None = None,
) -> RunResult:
    """Record this boot into a new run directory, then report and rotate (what ExecStart runs).

    The recorder inherits NOTIFY_SOCKET and sends READY=1 itself once its probes are live.
    """
    opts.validate()
    if os.geteuid() != 0:
        raise PrivilegeError(
            "boot run records system-wide: run it as root (it is what the unit runs)"
        )
    cmd = list(tracer_cmd) if tracer_cmd is not None else tracer_argv()
    boot_id = boot_id or host.boot_id("journal")
    started = now or dt.datetime.now(dt.timezone.utc)
    try:
        run_dir = new_run_dir(opts.output_dir, boot_id, started)
    except OSError as e:
        raise TracerError(
            f"cannot create a run directory in {opts.output_dir}: {e.strerror or e}"
        ) from None
    trace_dir = run_dir / TRACE_SUBDIR
    record_argv = [*cmd, "record", "-o", str(trace_dir), "--duration", str(opts.timeout_s)]
    for unit in K3S_UNITS:
        # k3s's own log lines (milestones, "Polling for API server readiness") on the trace
        # clock, via __MONOTONIC_TIMESTAMP; a unit that is not installed just logs nothing
        record_argv += ["--journal-unit", unit]
    if opts.end is not None:
        record_argv += ["--until", opts.end]
    meta: dict[str, Any] = {
        "name": run_dir.name,
        "boot_id": boot_id,
        "started_utc": started.isoformat(),
        "uptime_s_at_start": _uptime_s(),
        "options": {**asdict(opts), "output_dir": str(opts.output_dir)},
        "k3sprof_version": __version__,
        "state": "recording",
    }
    write_run_file(run_dir, meta)
    log(
        "info",
        f"recording boot {boot_id} to {trace_dir} "
        f"(until {opts.end or 'timeout'}, at most {opts.timeout_s} s)",
    )
    host.sd_notify("STATUS=attaching probes")

    record = Step(record_argv)
    stopped_by = "recorder"
    proc: subprocess.Popen[bytes] | None = None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the recorder stops cleanly and writes its trace

    t0 = time.monotonic()
    with _forward_signals(on_signal):
        try:
            # stdout/stderr go straight to the journal. Own session: a Ctrl-C at a terminal
            # reaches only us, and the recorder gets exactly one SIGTERM (a second signal
            # would make it stop without finishing the trace).
            proc = subprocess.Popen(record_argv, start_new_session=True)
        except OSError as e:
            record.error = f"cannot run the recorder: {e}"
        if proc is not None:
            if received:  # a stop request raced the start
                proc.send_signal(signal.SIGTERM)
            try:
                record.rc = proc.wait(timeout=opts.timeout_s + GRACE_S)
            except subprocess.TimeoutExpired:
                stopped_by = "backstop"
                log(
                    "error", f"the recorder did not stop {GRACE_S} s after its timeout: stopping it"
                )
                proc.terminate()
                try:
                    record.rc = proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    record.rc = proc.wait()
            if received and stopped_by == "recorder":
                stopped_by = "signal"
        record.seconds = round(time.monotonic() - t0, 3)
        if record.error is None and record.rc != 0:
            record.error = f"the recorder exited with status {record.rc}"
        if record.error:
            log("error", f"{record.error}; k3s was not held back by it (see the lines above)")
        else:
            log("info", f"recording ended after {record.seconds:.1f} s ({stopped_by})")

        report = analysis = None
        if (trace_dir / "meta.json").exists():
            host.sd_notify("STATUS=writing report")
            report, analysis = _analyze_and_report(cmd, run_dir, log)
        else:
            log("error", f"no trace was written to {trace_dir}")

    rotated = rotate(opts.output_dir, opts.keep, current=run_dir)
    for p in rotated:
        log("info", f"removed old run {p.name} (keeping the last {opts.keep})")
    result = RunResult(run_dir, trace_dir, boot_id, record, report, analysis, stopped_by, rotated)
    meta.update(
        state="done" if result.ok else "failed",
        stopped_by=stopped_by,
        finished_utc=dt.datetime.now(dt.timezone.utc).isoformat(),
        record=asdict(record),
        report=asdict(report) if report else None,
        analysis=asdict(analysis) if analysis else None,
        trace=str(trace_dir) if (trace_dir / "meta.json").exists() else None,
    )
    write_run_file(run_dir, meta)
    return result


def _uptime_s() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
