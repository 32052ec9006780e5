"""k3sprof report."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.analyzer import Options, load_and_analyze
from tracer.cli import _options, cli, run_library
from tracer.report._output import check_output, default_output
from tracer.report.html import OUTPUT_SUFFIX, HtmlReport

EPILOG = """\b
Example:
  k3sprof report /var/tmp/k3s.trace                 # writes reports/k3s.trace.html
  k3sprof report /var/tmp/k3s.trace -o k3s.html --force
"""


@cli.command(epilog=EPILOG)
@click.argument("trace", type=click.Path(path_type=Path))
@_options.output("HTML file to write (default: reports/<trace name>.html).")
@_options.analysis()
def report(trace: Path, output: Path | None, force: bool, options: Options) -> int:
    """Write one self-contained HTML report of a trace (opens offline, safe to share)."""
    out = output or default_output(trace, OUTPUT_SUFFIX)
    run_library(check_output, out, force)
    rep = HtmlReport.from_analysis(run_library(load_and_analyze, trace, options))
    run_library(rep.render, out, force=force)
    size = out.stat().st_size
    click.echo(f"wrote {out} ({size / 1e6:.1f} MB){'' if options.redact else ' (NOT redacted)'}")
    return 0
