"""`k3sprof whatif`: the startup recomputed from its recorded wait-for graph with changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tracer.cli import _options, cli, run_library

if TYPE_CHECKING:
    from tracer.analyzer import Options

EPILOG = """\b
CHANGE is one of:
  poll:ENDPOINT=INTERVAL   the endpoint's retry loop(s) run every INTERVAL (40ms, 1s)
  faster:SELECTOR=FACTOR   the selected processes' own work takes 1/FACTOR of its time
  remove:SELECTOR          the selected processes (and what they started) are gone
  parallel:A,B             A no longer waits for B (started beside it)
SELECTOR: a process key (PID@START) or pid, a comm / executable / component name (globs ok),
wait:child (every helper a parent waited for) or wait:module (module helpers).
With no CHANGE: the five changes with the largest predicted gain on this trace.
\b
Example:
  k3sprof whatif /var/tmp/k3s.trace poll:127.0.0.1:6443=200ms remove:modprobe
  k3sprof whatif /var/tmp/k3s.trace --json parallel:containerd,k3s-server
"""


@cli.command("whatif", epilog=EPILOG)
@click.argument("trace", type=click.Path(path_type=Path))
@click.argument("changes", nargs=-1, metavar="[CHANGE]...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/whatif.md).")
@_options.analysis()
def whatif_cmd(trace: Path, changes: tuple[str, ...], as_json: bool, options: Options) -> int:
    """Predict the startup with changes applied (poll interval, faster, removed, parallel)."""
    from tracer.report._analysis import load_result
    from tracer.whatif import parse, predict, render_text, suggest, to_json

    parsed = [run_library(parse, c) for c in changes]  # bad syntax before a big trace is read
    _, a = run_library(load_result, trace, options)
    if not parsed:
        sugg = run_library(suggest, a)
        if as_json:
            click.echo(json.dumps([s.__dict__ for s in sugg], indent=1, sort_keys=True))
        elif not sugg:
            click.echo("no change predicts a gain on this trace")
        else:
            click.echo("Changes with the largest predicted gain (try: k3sprof whatif TRACE CHANGE)")
            for s in sugg:
                click.echo(f"  {-s.gain_ns / 1e6:>+10,.1f} ms  {s.change:<40} {s.why}")
        return 0
    p = run_library(predict, a, parsed)
    click.echo(json.dumps(to_json(p), indent=1, sort_keys=True) if as_json else render_text(p),
               nl=as_json)
    return 0
