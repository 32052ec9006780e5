"""`k3sprof boot install|status|uninstall|run`: trace k3s startup from early boot (systemd)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from tracer import boot as lib
from tracer.cli import cli, run_library

T = TypeVar("T")
_run_library: Callable[..., Any] = run_library  # untyped upstream; typed by _call below


def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """run_library with the library function's own types."""
    result: T = _run_library(fn, *args, **kwargs)
    return result


BOOT_EPILOG = """\b
Example (trace the next boot, then look at it):
  sudo k3sprof boot install --end listen:10250 --keep 5
  sudo reboot
  sudo k3sprof boot status
"""

# journald reads a "<N>" prefix on a line as its syslog priority (SyslogLevelPrefix=yes).
_PRIORITY = {"error": 3, "warning": 4, "info": 6}

_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    hidden=True,
    help="Install under this directory instead of / (tests, image builds).",
)


def _absolute(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return value.absolute() if value is not None else None


@cli.group(epilog=BOOT_EPILOG)
def boot() -> None:
    """Trace k3s startup at boot: a systemd unit that runs before k3s.service."""


@boot.command()
@click.option(
    "--end",
    "end",
    metavar="COND",
    help="Stop recording at this moment, and end the analysis's critical path there "
    "(e.g. listen:10250; default: the timeout, and the profile's end).",
)
@click.option(
    "--start",
    "start",
    metavar="COND",
    help="Start the analysis's critical path at this moment (default: the profile's start).",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=int,
    default=lib.DEFAULT_TIMEOUT_S,
    show_default=True,
    metavar="S",
    help="Stop recording after S seconds at the latest.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=lib.DEFAULT_OUTPUT_DIR,
    show_default=True,
    help="Where runs are kept (root-only, 0700).",
)
@click.option(
    "--keep",
    type=int,
    default=lib.DEFAULT_KEEP,
    show_default=True,
    metavar="N",
    help="Keep the last N runs.",
)
@click.option(
    "--attach-timeout",
    "attach_timeout_s",
    type=int,
    default=lib.DEFAULT_ATTACH_TIMEOUT_S,
    show_default=True,
    metavar="S",
    help="Longest k3s waits for the probes to go live (TimeoutStartSec).",
)
@click.option(
    "--no-warm-cache",
    "warm",
    is_flag=True,
    flag_value=False,
    default=True,
    help="Do not compile the recorder's probes into the bytecode cache now (by default the "
    "first traced boot loads them instead of compiling while k3s waits; skipped with --root).",
)
@_root_option
def install(
    end: str | None,
    start: str | None,
    timeout_s: int,
    output_dir: Path,
    keep: int,
    attach_timeout_s: int,
    warm: bool,
    root: Path,
) -> int:
    """Install and enable the boot unit (takes effect at the next boot)."""
    from tracer._errors import ProbeError

    opts = lib.BootOptions(output_dir, end, timeout_s, keep, attach_timeout_s, start=start)
    res = _call(lib.install, opts, root=root)
    click.echo(f"{'updated' if res.replaced else 'installed'} {res.unit} (enabled: {res.wants})")
    click.echo(f"runs go to {res.output_dir} (root-only), the last {keep} are kept")
    if warm and root == Path("/"):
        try:
            w = lib.warm_bytecode_cache()
        except ProbeError as e:
            click.echo(f"note: the recorder's probes did not load here ({e}); the next boot "
                       "compiles them while k3s waits (`sudo k3sprof doctor` says why)")
        else:
            if w.source == "cache":
                click.echo(f"bytecode cache: holds the recorder's build (loaded and attached "
                           f"in {w.seconds:.2f} s): the next boot loads it")
            else:
                click.echo(f"bytecode cache: compiled the recorder's probes in {w.seconds:.1f} "
                           "s and stored them: the next boot loads them instead of compiling "
                           "while k3s waits" + (f" (but: {w.note})" if w.note else ""))
    if not res.k3s_units_found:
        click.echo(
            "note: neither k3s.service nor k3s-agent.service is installed yet; the unit is "
            "ordered before them and takes effect once k3s is installed"
        )
    if not res.reloaded and root == Path("/"):
        click.echo("note: systemd is not running here; the unit is read at the next boot")
    click.echo("reboot to trace the next boot; `k3sprof boot status` shows the result")
    return 0


@boot.command()
@_root_option
def uninstall(root: Path) -> int:
    """Disable and remove the boot unit (recorded runs are kept)."""
    res = _call(lib.uninstall, root=root)
    if not res.removed:
        click.echo(f"{lib.UNIT_NAME} is not installed: nothing to remove")
    for p in res.removed:
        click.echo(f"removed {p}")
    return 0


@boot.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Runs directory (default: the one the installed unit uses).",
)
@_root_option
def status(as_json: bool, output_dir: Path | None, root: Path) -> int:
    """Is the unit installed and enabled, and which boots were recorded."""
    st = _call(lib.status, root=root, output_dir=output_dir)
    if as_json:
        click.echo(json.dumps(_status_json(st), indent=1, sort_keys=True))
        return 0
    state = (
        "not installed"
        if not st.installed
        else ("enabled" if st.enabled else "installed, NOT enabled")
    )
    click.echo(f"{lib.UNIT_NAME}: {state}" + (f" ({st.active})" if st.active else ""))
    if st.options is not None:
        o = st.options
        click.echo(
            f"  stops at: {o.end or 'timeout'}, timeout {o.timeout_s} s, "
            f"keeps {o.keep}, output {o.output_dir}"
        )
        missing = [u for u in lib.K3S_UNITS if u not in st.k3s_units_found]
        if len(missing) == len(lib.K3S_UNITS):
            click.echo("  k3s is not installed yet: the ordering applies once it is")
    if not st.runs:
        click.echo("no recorded boots yet")
    for r in st.runs:
        res = r.result
        report = "report" if r.has_report else f"no report ({_step_error(res.get('report'))})"
        state = res.get("state", "?")
        click.echo(f"  {r.name}  {state:9} {'trace' if r.has_trace else 'NO TRACE'}, {report}")
        click.echo(f"      {r.path}")
    return 0


def _step_error(step: Any) -> str:
    if isinstance(step, dict) and step.get("error"):
        return str(step["error"])
    return "not attempted"


def _status_json(st: lib.BootStatus) -> dict[str, Any]:
    return {
        "unit": str(st.unit),
        "installed": st.installed,
        "enabled": st.enabled,
        "active": st.active,
        "exec_start": st.exec_start,
        "options": None
        if st.options is None
        else {**asdict(st.options), "output_dir": str(st.options.output_dir)},
        "k3s_units_found": st.k3s_units_found,
        "runs": [
            {
                "name": r.name,
                "path": str(r.path),
                "seq": r.seq,
                "boot_id": r.boot_id,
                "started_utc": r.started_utc,
                "trace": r.has_trace,
                "report": r.has_report,
                "state": r.result.get("state"),
            }
            for r in st.runs
        ],
    }


def _log(level: str, message: str) -> None:
    # Under systemd stdout/stderr are the journal: a "<N>" prefix sets the line's priority.
    prefix = f"<{_PRIORITY.get(level, 6)}>" if os.environ.get("JOURNAL_STREAM") else ""
    click.echo(f"{prefix}k3sprof boot: {message}", err=level != "info")


@boot.command()
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=lib.DEFAULT_OUTPUT_DIR,
    show_default=True,
    callback=_absolute,
)
@click.option("--end", "end", metavar="COND")
@click.option("--start", "start", metavar="COND")
@click.option(
    "--timeout",
    "timeout_s",
    type=int,
    default=lib.DEFAULT_TIMEOUT_S,
    show_default=True,
    metavar="S",
)
@click.option("--keep", type=int, default=lib.DEFAULT_KEEP, show_default=True, metavar="N")
def run(output_dir: Path, end: str | None, start: str | None, timeout_s: int, keep: int) -> int:
    """Record this boot now, then report and rotate (what the unit's ExecStart runs)."""
    opts = lib.BootOptions(output_dir, end, timeout_s, keep, start=start)
    res = _call(lib.run, opts, log=_log)
    _log(
        "info" if res.ok else "error",
        f"run {res.run_dir.name}: "
        + ("trace written" if res.ok else "FAILED")
        + f" ({res.run_dir})",
    )
    return 0 if res.ok else 1
