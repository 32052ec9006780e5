"""k3sprof export."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.analyzer import Options, load_and_analyze
from tracer.cli import _options, cli, run_library
from tracer.report._output import check_output, default_output
from tracer.report.perfetto import OUTPUT_SUFFIX, PerfettoExport

EPILOG = """\b
Example:
  k3sprof export /var/tmp/k3s.trace --format perfetto -o k3s.json
  then open k3s.json in https://ui.perfetto.dev or chrome://tracing
"""


@cli.command(epilog=EPILOG)
@click.argument("trace", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["perfetto"]),
    default="perfetto",
    show_default=True,
    help="Output format (Chrome trace-event JSON).",
)
@_options.output("File to write (default: reports/<trace name>.perfetto.json).")
@_options.analysis()
def export(trace: Path, fmt: str, output: Path | None, force: bool, options: Options) -> int:
    """Export a trace for Perfetto UI / chrome://tracing (processes as tracks, waits as flows)."""
    out = output or default_output(trace, OUTPUT_SUFFIX)
    run_library(check_output, out, force)
    exp = PerfettoExport.from_analysis(run_library(load_and_analyze, trace, options))
    run_library(exp.render, out, force=force)
    click.echo(f"wrote {out} ({len(exp.doc['traceEvents'])} events, {fmt})")
    return 0
