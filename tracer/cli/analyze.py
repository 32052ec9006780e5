"""`k3sprof analyze`: what the startup waited on, and its critical path."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tracer.cli import _options, cli, run_library

if TYPE_CHECKING:
    from tracer.analyzer import Options

#: Exit codes (docs/analyze.md): 0 analysed; 2 bad option (COND, profile); 3 trace unreadable;
#: 6 the start or end milestone never happened (the analysis is still printed, without a path).
EXIT_NOT_REACHED = 6


@cli.command(
    "analyze",
    epilog="\b\nExample:\n  k3sprof analyze /var/tmp/k3s.trace --end 'log:k3s is up' --all-waits"
    "\n\nExit codes: 0 ok, 2 bad option, 3 unreadable trace, 6 start/end milestone not reached.",
)
@click.argument("trace", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON (docs/analyze.md).")
@click.option(
    "--all-waits",
    is_flag=True,
    help="Text: also list the waits outside the analysis window (e.g. a daemon retrying after "
    "the end milestone), after the ranked ones. JSON always has every wait (in_window).",
)
@click.option(
    "--all-segments",
    is_flag=True,
    help="Text: list every critical-path segment (by default consecutive runs of one helper, "
    "e.g. 60 iptables, are one line). JSON always has every segment.",
)
@_options.analysis()
def analyze_cmd(
    trace: str,
    as_json: bool,
    options: Options,
    all_waits: bool,
    all_segments: bool,
) -> int:
    """Find what startup waited on: critical path, waits, phases."""
    from tracer.analyzer import load_and_analyze
    from tracer.report.outputs import analysis_json_chunks
    from tracer.report.text import not_reached, render

    a = run_library(load_and_analyze, trace, options)
    if as_json:
        for piece in analysis_json_chunks(a):  # 1M events: ~80 MB of text, never all at once
            click.echo(piece, nl=False)
        click.echo()
    else:
        click.echo(render(a, all_waits=all_waits, all_segments=all_segments), nl=False)
    why = not_reached(a)
    if why:
        click.echo(f"k3sprof: {why}", err=True)
        return EXIT_NOT_REACHED
    return 0
