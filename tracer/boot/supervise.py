"""`boot run`, what the unit's ExecStart runs: record this boot into a new run directory, then
analyze, report and rotate.

The recorder is ``k3sprof record`` in a child process (its own session) until the end condition,
the timeout or SIGTERM (``systemctl stop``); it inherits NOTIFY_SOCKET and sends READY=1 itself
once its probes are live. Then, in this process, one load -> analyze of the trace writes both
the analysis JSON and the HTML report (no second interpreter, no second analysis). A failing
analysis or report keeps the trace.
"""

from __future__ import annotations

import datetime as dt
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

#: `analyze`'s exit status when the start or end milestone was not reached (tracer/cli/analyze.py)
EXIT_NOT_REACHED = 6
#: exit status of a command that died of an unexpected exception (Python's)
EXIT_UNEXPECTED = 1

Log = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)


@dataclass
class Step:
    """One step of `boot run` and what came of it: the recorder is a child process (argv is
    what ran); analysis and report run in process (argv is the command that redoes them by hand,
    rc the exit status that command would have had)."""

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


#: the options `boot run` has when none are given
_DEFAULTS = BootOptions()


def _analyze_and_report(
    run_dir: Path, log: Log, opts: BootOptions = _DEFAULTS
) -> tuple[Step, Step]:
    """RUN/analysis.json and RUN/report.html from RUN/trace: the ONE place `boot run` analyzes.

    One load -> analyze in this process; both files are written from that one Analysis. Each
    step fails alone: a report that cannot be written keeps the analysis, an analysis that
    fails keeps the trace. A boot stopped before its end milestone still gets its analysis
    (``end_reached: false``), as `analyze` does. Nothing here raises: a failure is one line in
    the log and an ``error`` in its Step.
    """
    # imported here, not at the top: `boot run` starts the recorder (and so k3s) first, and
    # pyarrow, the analyzer and the report's imports are not needed until the trace exists
    from tracer.analyzer import Analysis, Options, load_and_analyze
    from tracer.report.outputs import write_outputs
    from tracer.report.text import not_reached

    trace_dir = run_dir / TRACE_SUBDIR
    # the installed --start/--end are the analysis's too: the recording stopped at --end, and
    # the critical path ends there (not at the profile's own end, which may never come)
    window = [*(["--start", opts.start] if opts.start else []),
              *(["--end", opts.end] if opts.end else [])]
    analysis = Step(_by_hand("analyze", str(trace_dir), *window, "--json"))
    report = Step(_by_hand("report", str(trace_dir), *window, "-o", str(run_dir / REPORT_FILE)))

    t0 = time.monotonic()
    a: Analysis | None = None
    note = ""
    try:
        a = load_and_analyze(trace_dir, Options(start=opts.start, end=opts.end))
        write_outputs(a, json_path=run_dir / ANALYSIS_FILE)
        why = not_reached(a)
        # `analyze` exits non-zero with its full answer for this; the step has not failed
        analysis.rc = EXIT_NOT_REACHED if why else 0
        note = f" ({why}: end_reached is false)" if why else ""
    except Exception as e:  # every failure is the step's, never the trace's (nor a traceback)
        _failed(analysis, e)
    analysis.seconds = round(time.monotonic() - t0, 3)
    if analysis.error is None:
        log("info", f"analysis written in {analysis.seconds:.1f} s{note}")
    else:
        log(_level(analysis), f"analysis failed ({analysis.error}); the trace is kept")

    if a is None:  # nothing to render: the report fails the way `k3sprof report` would
        report.rc, report.error = analysis.rc, analysis.error
        log("warning", "report not written (the analysis failed); the trace is kept")
        return report, analysis
    t0 = time.monotonic()
    try:
        write_outputs(a, html_path=run_dir / REPORT_FILE)
        report.rc = 0
    except Exception as e:
        _failed(report, e)
    report.seconds = round(time.monotonic() - t0, 3)
    if report.error is None:
        log("info", f"report written in {report.seconds:.1f} s")
    else:
        log(_level(report), f"report failed ({report.error}); the analysis and the trace are kept")
    return report, analysis


def _by_hand(*args: str) -> list[str]:
    """A Step's argv: the command that redoes it by hand (the step itself runs in process)."""
    return [*tracer_argv(), *args]


def _failed(step: Step, e: Exception) -> None:
    """Record why a step failed, with the exit status its command would have had."""
    if isinstance(e, TracerError):  # a user-level failure: its own one line
        step.rc, step.error = e.exit_code, str(e)
    else:  # a bug: say what it was (the type), not only its message; one line for the journal
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "no message")
        step.rc, step.error = EXIT_UNEXPECTED, f"unexpected {type(e).__name__}: {first[:300]}"


def _level(step: Step) -> str:
    return "error" if step.rc == EXIT_UNEXPECTED else "warning"


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
    tracer_cmd is how the recorder is started (default: this interpreter's `-m tracer`); the
    analysis and the report run in this process.
    """
    opts.validate()
    if os.geteuid() != 0:
        raise PrivilegeError(
            "boot run records system-wide: run it as root (it is what the unit runs)"
        )
    cmd = list(tracer_cmd) if tracer_cmd is not None else tracer_argv()
    boot_id = boot_id or host.boot_id("journal")
    started = now or dt.datetime.now(dt.UTC)
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
        f"(until {opts.end or 'timeout'}, at most {opts.timeout_s} s"
        + (f", analysis from {opts.start}" if opts.start else "") + ")",
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
            report, analysis = _analyze_and_report(run_dir, log, opts)
        else:
            log("error", f"no trace was written to {trace_dir}")

    rotated = rotate(opts.output_dir, opts.keep, current=run_dir)
    for p in rotated:
        log("info", f"removed old run {p.name} (keeping the last {opts.keep})")
    result = RunResult(run_dir, trace_dir, boot_id, record, report, analysis, stopped_by, rotated)
    meta.update(
        state="done" if result.ok else "failed",
        stopped_by=stopped_by,
        finished_utc=dt.datetime.now(dt.UTC).isoformat(),
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
