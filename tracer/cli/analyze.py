"""`k3sprof analyze`: what the startup waited on, and its critical path."""

from __future__ import annotations

import json

import click

from tracer.cli import _options, cli, run_library

#: Exit codes (docs/analyze.md): 0 analysed; 2 bad option (COND, profile); 3 trace unreadable;
#: 6 the start or end milestone never happened (the analysis is still printed, without a path).
EXIT_NOT_REACHED = 6


@cli.command(
    "analyze",
    epilog="Exit codes: 0 ok, 2 bad option, 3 unreadable trace, 6 start/end milestone not reached.",
)
@click.argument("trace", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON (docs/analyze.md).")
@_options.profile()
@click.option(
    "--start",
    "start",
    metavar="COND",
    help="Start milestone (default: profile's, "
    "else the recorded command's first exec, else the trace start).",
)
@click.option(
    "--end",
    "end",
    metavar="COND",
    help="End milestone, e.g. listen:10250 "
    "(default: profile's; generic: the recorded command's exit).",
)
@_options.scope
@_options.no_redact()
def analyze_cmd(
    trace: str,
    as_json: bool,
    profile: str,
    start: str | None,
    end: str | None,
    scope: str | None,
    no_redact: bool,
) -> int:
    """Find what startup waited on: critical path, waits, phases."""
    from tracer.analyzer import Options, load_and_analyze

    options = Options(
        profile=profile, start=start, end=end, redact=not no_redact, scope=scope or "auto"
    )
    a = run_library(load_and_analyze, trace, options)
    if as_json:
        # compact: json's C encoder only runs without indent (indent costs 10x on 1M events)
        click.echo(json.dumps(a.to_json(), sort_keys=True, separators=(",", ":")))
    else:
        from tracer.analyzer.text import render

        click.echo(render(a), nl=False)
    if not (a.start_reached and a.end_reached):
        what = "start" if not a.start_reached else "end"
        spec = a.start_by if what == "start" else a.end_by
        click.echo(f"k3sprof: {what} milestone not reached ({spec})", err=True)
        return EXIT_NOT_REACHED
    return 0
