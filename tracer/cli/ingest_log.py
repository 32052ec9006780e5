"""`k3sprof ingest-log TRACE FILE`: add a log captured elsewhere to a trace's log table."""

from __future__ import annotations

import click

from tracer.cli import cli, run_library


@cli.command("ingest-log")
@click.argument("trace", type=click.Path(file_okay=False))
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--source", "source", metavar="NAME",
              help="Name for these lines (rows get source file:NAME; default: the file's name).")
@click.option("--timezone", "tz_name", metavar="TZ",
              help="Zone of times written without one (klog, journald short): UTC, +01:00, "
                   "Europe/Berlin. Default: this machine's local time.")
def ingest_log(trace: str, file: str, source: str | None, tz_name: str | None) -> int:
    """Parse a log captured elsewhere (journalctl output, k3s.log, containerd.log, etcd JSON)
    and add it to TRACE's log table, aligned to the trace clock by the lines' own timestamps.

    Every line is kept: lines in no known format are stored raw; lines with no time of their
    own (stack traces) take their neighbour's. Ingesting the same --source again replaces it.
    Run it on a finished trace.
    """
    from tracer.context import logs

    tz = run_library(logs.parse_timezone, tz_name) if tz_name else None
    r = run_library(logs.ingest, trace, file, source, tz=tz)
    click.echo(
        f"added {r.rows} lines from {file} as {r.source}: {r.own_time} with their own time, "
        f"{r.neighbour_time} at a neighbour's, {r.unparsed} in no known format (kept raw)"
        + (f", {r.no_time} with no usable time" if r.no_time else "")
        + (f"; replaced {r.replaced} rows of an earlier ingest" if r.replaced else "")
    )
    return 0
