"""Boot-time tracing: a systemd unit that records k3s startup from early boot.

The unit (``k3sprof-boot.service``) is ``Type=notify`` and ordered ``Before=k3s.service
k3s-agent.service``: systemd holds k3s back until the recorder reports READY=1, which
`k3sprof record` sends only once its probes are live, so k3s never starts untraced. It is
ordering only (no ``Requires=`` anywhere): when the recorder fails or hangs, its start job
fails or times out (``TimeoutStartSec``) and k3s starts anyway; the failure is in the journal.

``ExecStart`` runs ``k3sprof boot run`` (:func:`run`), which runs ``k3sprof record`` as a child
until the end condition, the timeout or SIGTERM (``systemctl stop``), then writes a report with
``k3sprof report`` when it can (a failing report keeps the trace), then keeps the last N runs.

Everything here takes a root prefix (``root``) so tests install into a temporary directory;
nothing needs a running systemd (``enable`` is the symlink systemctl would make).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tracer import __version__, conditions
from tracer._errors import PrivilegeError, TracerError, UsageError

UNIT_NAME = "k3sprof-boot.service"
WANTED_BY = "multi-user.target"
K3S_UNITS = ("k3s.service", "k3s-agent.service")
DEFAULT_OUTPUT_DIR = Path("/var/lib/k3sprof")
DEFAULT_TIMEOUT_S = 300
DEFAULT_KEEP = 5
#: TimeoutStartSec: how long k3s may be held back by an attach that hangs. BCC compiles and
#: attaches in about 1-1.5 s on a warm machine; a cold first boot of a small VM is far slower.
DEFAULT_ATTACH_TIMEOUT_S = 60
#: TimeoutStopSec: `systemctl stop` waits this long for the trace and report to be written.
STOP_TIMEOUT_S = 180
#: The recorder gets --duration TIMEOUT; if it has not stopped GRACE_S later it is stopped.
GRACE_S = 30
REPORT_TIMEOUT_S = 300
RUN_FILE = "run.json"
TRACE_SUBDIR = "trace"
REPORT_FILE = "report.html"
ANALYSIS_FILE = "analysis.json"
#: <seq>-<UTC time>-<boot id>: the sequence number orders runs, because early in boot the
#: realtime clock may still be wrong (VMs without an RTC, before NTP), so times do not.
RUN_NAME = re.compile(r"^(?P<seq>\d{4,})-(?P<time>\d{8}T\d{6}Z)-(?P<boot_id>[0-9a-f]{32})$")

Log = Callable[[str, str], None]  # (level: "info" | "warning" | "error", message)


@dataclass(frozen=True)
class BootOptions:
    """What `boot install` writes into the unit and `boot run` obeys."""

    output_dir: Path = DEFAULT_OUTPUT_DIR
    end: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    keep: int = DEFAULT_KEEP
    attach_timeout_s: int = DEFAULT_ATTACH_TIMEOUT_S

    def validate(self) -> BootOptions:
        """Raise UsageError (one line) for a value the unit could not use."""
        if self.end is not None:
            conditions.parse(self.end)
            if "\n" in self.end:
                raise UsageError("--end: a condition cannot contain a newline")
        if self.timeout_s <= 0:
            raise UsageError(
                f"--timeout must be a positive number of seconds, not {self.timeout_s}"
            )
        if self.keep < 1:
            raise UsageError(f"--keep must be at least 1 (the run just recorded), not {self.keep}")
        if self.attach_timeout_s <= 0:
            raise UsageError(f"--attach-timeout must be positive, not {self.attach_timeout_s}")
        if not self.output_dir.is_absolute():
            raise UsageError(
                f"--output-dir must be an absolute path (the unit has no cwd): {self.output_dir}"
            )
        return self


# --- the unit ------------------------------------------------------------------------------


def default_exe() -> list[str]:
    """The command that runs this very installation: its console script, else python -m tracer."""
    script = Path(sys.executable).with_name("k3sprof")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "tracer"]


def run_argv(opts: BootOptions, exe: Sequence[str]) -> list[str]:
    """The argv of ExecStart: `k3sprof boot run` with the installed options."""
    argv = [
        *exe,
        "boot",
        "run",
        "--output-dir",
        str(opts.output_dir),
        "--timeout",
        str(opts.timeout_s),
        "--keep",
        str(opts.keep),
    ]
    if opts.end is not None:
        argv += ["--end", opts.end]
    return argv


_PLAIN_ARG = re.compile(r"^[A-Za-z0-9_./:@=+,-]+$")


def _unit_quote(arg: str) -> str:
    # systemd splits ExecStart like a shell (quotes, backslash escapes), and then expands
    # %-specifiers and $VARIABLES, so those two are doubled to stay literal.
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.match(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(_unit_quote(a) for a in argv)


def parse_exec_line(line: str) -> list[str]:
    """Inverse of exec_line for the lines it writes (used by status and the tests)."""
    return [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(line)]


def render_unit(opts: BootOptions, exe: Sequence[str]) -> str:
    """The unit file text."""
    k3s = " ".join(K3S_UNITS)
    return f"""\
# Written by `k3sprof boot install` (k3sprof {__version__}); remove with `k3sprof boot uninstall`.
[Unit]
Description=k3sprof boot-time trace of k3s startup
# Start as early as the recorder can work: once local file systems (the venv, the output
# directory, kernel headers) and tracefs are there, not after basic.target/the network.
DefaultDependencies=no
Wants=sys-kernel-tracing.mount
After=sysinit.target local-fs.target sys-kernel-tracing.mount
# Ordering only: k3s waits for READY=1 (probes live) or for this unit to fail or time out.
# Nothing may Require= this unit, so a broken recorder never keeps k3s from starting.
# Ordering against a unit that is not installed yet is fine: it applies once it exists.
Before={k3s}
Conflicts=shutdown.target
Before=shutdown.target

[Service]
Type=notify
# READY=1 comes from the recorder, a child of the main process.
NotifyAccess=all
ExecStart={exec_line(run_argv(opts, exe))}
# A hung attach holds k3s back at most this long; then the unit fails and k3s starts.
TimeoutStartSec={opts.attach_timeout_s}
# `systemctl stop` ends the recording early; the trace and report are still written.
TimeoutStopSec={STOP_TIMEOUT_S}
# SIGTERM to `boot run` only: it stops the recorder and lets the report finish.
KillMode=mixed
Restart=no
UMask=0077
Environment=PYTHONUNBUFFERED=1
SyslogIdentifier=k3sprof-boot

[Install]
WantedBy={WANTED_BY}
"""


# --- install / uninstall / status ------------------------------------------------------------


def unit_dir(root: Path) -> Path:
    return root / "etc/systemd/system"


def unit_path(root: Path) -> Path:
    return unit_dir(root) / UNIT_NAME


def wants_link(root: Path) -> Path:
    return unit_dir(root) / f"{WANTED_BY}.wants" / UNIT_NAME


def _under(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _systemd_running(root: Path) -> bool:
    return root == Path("/") and Path("/run/systemd/system").is_dir()


def _daemon_reload(root: Path) -> bool:
    """Tell a running systemd about the change; False when there is none to tell."""
    if not _systemd_running(root) or shutil.which("systemctl") is None:
        return False
    subprocess.run(["systemctl", "daemon-reload"], check=False, capture_output=True)
    return True


def _require_root(root: Path, what: str) -> None:
    if root == Path("/") and os.geteuid() != 0:
        raise PrivilegeError(
            f"boot {what} writes /etc/systemd/system: run it as root (sudo k3sprof boot {what})"
        )


def ensure_output_dir(path: Path) -> None:
    """Create the output directory root-only (0700); tighten it if it exists looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


@dataclass
class InstallResult:
    unit: Path
    wants: Path
    output_dir: Path
    replaced: bool
    reloaded: bool
    k3s_units_found: list[str]


def install(
    opts: BootOptions, *, root: Path = Path("/"), exe: Sequence[str] | None = None
) -> InstallResult:
    """Write and enable the unit (idempotent: a second install replaces the options)."""
    opts.validate()
    _require_root(root, "install")
    exe = list(exe) if exe is not None else default_exe()
    if not Path(exe[0]).is_absolute():
        raise UsageError(f"the unit needs an absolute path to k3sprof, not {exe[0]!r}")
    path = unit_path(root)
    replaced = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render_unit(opts, exe))
        tmp.chmod(0o644)
        os.replace(tmp, path)
        link = wants_link(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        # What `systemctl enable` makes; the target is the path as seen from inside root.
        link.symlink_to(Path("/") / path.relative_to(root))
        ensure_output_dir(_under(root, opts.output_dir))
    except PermissionError as e:
        raise PrivilegeError(f"cannot write {e.filename}: run as root") from None
    found = [u for u in K3S_UNITS if _unit_exists(root, u)]
    return InstallResult(
        path, wants_link(root), opts.output_dir, replaced, _daemon_reload(root), found
    )


def _unit_exists(root: Path, name: str) -> bool:
    dirs = (
        "etc/systemd/system",
        "run/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    )
    return any((root / d / name).exists() for d in dirs)


@dataclass
class UninstallResult:
    removed: list[Path]
    reloaded: bool


def uninstall(*, root: Path = Path("/")) -> UninstallResult:
    """Disable and remove the unit; recorded traces stay where they are."""
    _require_root(root, "uninstall")
    removed: list[Path] = []
    for p in (wants_link(root), unit_path(root)):
        if p.is_symlink() or p.exists():
            try:
                p.unlink()
            except PermissionError:
                raise PrivilegeError(f"cannot remove {p}: run as root") from None
            removed.append(p)
    return UninstallResult(removed, _daemon_reload(root) if removed else False)


def options_from_argv(argv: Sequence[str]) -> BootOptions:
    """Read BootOptions back from an ExecStart argv written by run_argv."""
    values: dict[str, str] = {}
    it = iter(argv[argv.index("run") + 1 :] if "run" in argv else [])
    for a in it:
        if a.startswith("--"):
            values[a[2:]] = next(it, "")
    return BootOptions(
        output_dir=Path(values.get("output-dir", str(DEFAULT_OUTPUT_DIR))),
        end=values.get("end"),
        timeout_s=int(values.get("timeout", DEFAULT_TIMEOUT_S)),
        keep=int(values.get("keep", DEFAULT_KEEP)),
    )


def read_unit(root: Path = Path("/")) -> tuple[list[str], BootOptions] | None:
    """ExecStart argv and options of the installed unit, or None if not installed."""
    try:
        text = unit_path(root).read_text()
    except FileNotFoundError:
        return None
    attach = DEFAULT_ATTACH_TIMEOUT_S
    argv: list[str] = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            argv = parse_exec_line(line.partition("=")[2])
        elif line.startswith("TimeoutStartSec="):
            attach = int(line.partition("=")[2])
    opts = options_from_argv(argv)
    return argv, BootOptions(opts.output_dir, opts.end, opts.timeout_s, opts.keep, attach)


@dataclass
class RunInfo:
    """One recorded boot in the output directory."""

    name: str
    path: Path
    seq: int
    boot_id: str
    started_utc: str
    has_trace: bool
    has_report: bool
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class BootStatus:
    installed: bool
    enabled: bool
    unit: Path
    exec_start: list[str] | None
    options: BootOptions | None
    active: str | None  # systemctl is-active, when systemd runs here
    k3s_units_found: list[str]
    runs: list[RunInfo]


def list_runs(output_dir: Path) -> list[RunInfo]:
    """Runs in the output directory, oldest first; anything not named like a run is ignored."""
    runs = []
    try:
        entries = list(output_dir.iterdir())
    except FileNotFoundError:
        return []
    except PermissionError:
        raise PrivilegeError(
            f"{output_dir}: permission denied (boot traces are root-only: use sudo)"
        ) from None
    for p in entries:
        m = RUN_NAME.match(p.name)
        if not m or not p.is_dir() or p.is_symlink():
            continue
        try:
            result = json.loads((p / RUN_FILE).read_text())
        except (OSError, ValueError):
            result = {}
        runs.append(
            RunInfo(
                p.name,
                p,
                int(m["seq"]),
                m["boot_id"],
                m["time"],
                (p / TRACE_SUBDIR / "meta.json").exists(),
                (p / REPORT_FILE).exists(),
                result if isinstance(result, dict) else {},
            )
        )
    return sorted(runs, key=lambda r: (r.seq, r.name))


def status(*, root: Path = Path("/"), output_dir: Path | None = None) -> BootStatus:
    """Installed? enabled? with which options? and the runs recorded so far."""
    unit = read_unit(root)
    argv, opts = unit if unit is not None else (None, None)
    out = output_dir or (opts.output_dir if opts else DEFAULT_OUTPUT_DIR)
    active = None
    if _systemd_running(root) and shutil.which("systemctl"):
        r = subprocess.run(
            ["systemctl", "is-active", UNIT_NAME], capture_output=True, text=True, check=False
        )
        active = r.stdout.strip() or None
    link = wants_link(root)
    return BootStatus(
        installed=unit is not None,
        enabled=link.is_symlink() or link.exists(),
        unit=unit_path(root),
        exec_start=argv,
        options=opts,
        active=active,
        k3s_units_found=[u for u in K3S_UNITS if _unit_exists(root, u)],
        runs=list_runs(_under(root, out)),
    )


# --- naming and rotation --------------------------------------------------------------------


def current_boot_id() -> str:
    """This boot's id as journalctl prints it (32 hex digits), so `journalctl -b ID` finds it."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")


def run_name(seq: int, boot_id: str, when: dt.datetime) -> str:
    name = f"{seq:04d}-{when.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{boot_id}"
    if not RUN_NAME.match(name):
        raise ValueError(f"bad run name {name!r} (boot id must be 32 hex digits)")
    return name


def new_run_dir(output_dir: Path, boot_id: str, when: dt.datetime) -> Path:
    """Create the next run directory (0700); the sequence number never repeats a kept one."""
    ensure_output_dir(output_dir)
    seq = max((r.seq for r in list_runs(output_dir)), default=0) + 1
    while True:
        path = output_dir / run_name(seq, boot_id, when)
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            seq += 1


def rotate(output_dir: Path, keep: int, *, current: Path | None = None) -> list[Path]:
    """Delete all but the newest `keep` runs (never `current`); returns what was deleted."""
    runs = list_runs(output_dir)
    doomed = [r.path for r in runs[: max(len(runs) - keep, 0)] if r.path != current]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


# --- sd_notify ------------------------------------------------------------------------------


def notify(message: str, *, env: dict[str, str] | None = None) -> bool:
    """Send one sd_notify datagram to $NOTIFY_SOCKET; False when not run by systemd."""
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract socket namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        return False
    return True


# --- boot run -------------------------------------------------------------------------------


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


def _write_run_file(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, run_dir / RUN_FILE)


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
    boot_id = boot_id or current_boot_id()
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
    _write_run_file(run_dir, meta)
    log(
        "info",
        f"recording boot {boot_id} to {trace_dir} "
        f"(until {opts.end or 'timeout'}, at most {opts.timeout_s} s)",
    )
    notify("STATUS=attaching probes")

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
            notify("STATUS=writing report")
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
    _write_run_file(run_dir, meta)
    return result


def _uptime_s() -> float | None:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
