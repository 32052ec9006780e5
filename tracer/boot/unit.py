"""The systemd unit: its text, install/uninstall (what `systemctl enable|disable` would do), and
status (the installed options read back from the unit, and the recorded runs).

Everything takes a root prefix (``root``) so tests install into a temporary directory; nothing
needs a running systemd (``enable`` is the symlink systemctl would make).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tracer import __version__
from tracer._errors import PrivilegeError, UsageError
from tracer.boot.options import (
    DEFAULT_ATTACH_TIMEOUT_S,
    DEFAULT_KEEP,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_TIMEOUT_S,
    BootOptions,
)
from tracer.boot.runs import RunInfo, ensure_output_dir, list_runs

if TYPE_CHECKING:
    from tracer.collector.start import CacheWarmth

UNIT_NAME = "k3sprof-boot.service"
WANTED_BY = "multi-user.target"
K3S_UNITS = ("k3s.service", "k3s-agent.service")
#: TimeoutStopSec: `systemctl stop` waits this long for the trace and report to be written.
STOP_TIMEOUT_S = 180

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
    if opts.start is not None:
        argv += ["--start", opts.start]
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


def warm_bytecode_cache() -> CacheWarmth:
    """Put the build of the probes `boot run`'s recorder loads (record's defaults) in the
    bytecode cache of THIS machine: the first traced boot then loads it in a fraction of a
    second instead of compiling with BCC while k3s waits (seconds on hardware, minutes in a
    TCG VM). Raises ProbeError when the probes cannot load here (`doctor` says why)."""
    from tracer.collector.start import RecordOptions, warm_cache

    return warm_cache(RecordOptions(output=Path("/nonexistent")))


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
        start=values.get("start"),
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
    return argv, dataclasses.replace(opts, attach_timeout_s=attach)


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
