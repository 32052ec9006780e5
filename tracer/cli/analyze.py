"""`k3sprof analyze`: what the startup waited on, and its critical path."""

from __future__ import annotations

import json

import click

from tracer.cli import cli, run_library

#: Exit codes (docs/analyze.md): 0 analysed; 2 bad option (COND, profile); 3 trace unreadable;
#: 6 the start or end milestone never happened (the analysis is still printed, without a path).
EXIT_NOT_REACHED = 6


def _analyze(
    path: str, profile: str, start: str | None, end: str | None, redact: bool, scope: str
) -> dict:  # type: ignore[type-arg]
    from tracer import schema
    from tracer.analyzer import analyze

    return analyze(
        schema.load(path), profile=profile, start=start, end=end, redact=redact, scope=scope
    )


#: shared by analyze, report, export and compare
SCOPE_HELP = (
    "tree: only the recorded command's process tree (processes outside it still appear as "
    "what it waited for); all: every process in the trace. "
    "Default: tree when the trace was recorded with `record -- CMD`, else all."
)


@cli.command(
    "analyze",
    epilog="Exit codes: 0 ok, 2 bad option, 3 unreadable trace, 6 start/end milestone not reached.",
)
@click.argument("trace", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON (docs/analyze.md).")
@click.option(
    "--profile",
    default="auto",
    show_default=True,
    help="k3s, generic, auto, or a profile JSON file.",
)
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
@click.option("--scope", type=click.Choice(["tree", "all"]), default=None, help=SCOPE_HELP)
@click.option("--no-redact", is_flag=True, help="Keep secrets (tokens, passwords) in argv.")
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
    result = run_library(_analyze, trace, profile, start, end, not no_redact, scope or "auto")
    if as_json:
        # compact: json's C encoder only runs without indent (indent costs 10x on 1M events)
        click.echo(json.dumps(result, sort_keys=True, separators=(",", ":")))
    else:
        from tracer.analyzer.text import render

        click.echo(render(result), nl=False)
    if not (result["start_reached"] and result["end_reached"]):
        what = "start" if not result["start_reached"] else "end"
        spec = result["start_by"] if what == "start" else result["end_by"]
        click.echo(f"k3sprof: {what} milestone not reached ({spec})", err=True)
        return EXIT_NOT_REACHED
    return 0
