"""k3sprof compare."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.analyzer import Options
from tracer.cli import _options, cli, run_library
from tracer.report._analysis import load_result
from tracer.report._output import check_output
from tracer.report.compare import compare as compare_results
from tracer.report.compare import render_json, render_text, write_html

EPILOG = """\b
A and B are trace directories or `k3sprof analyze --json` outputs. Negative deltas: B is faster.
Example:
  k3sprof compare reports/v1.32.3.trace reports/v1.32.4.trace -o reports/compare.html
"""


@cli.command(epilog=EPILOG)
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_options.output("Also write a self-contained HTML comparison here.")
@click.option("--no-redact", is_flag=True, help="Keep secrets found in labels.")
@_options.profile("Component profile used when A/B are traces.")
@_options.scope
@click.option("--end", "end", metavar="COND", help="Critical path end when A/B are traces.")
def compare(
    a: Path,
    b: Path,
    as_json: bool,
    output: Path | None,
    force: bool,
    no_redact: bool,
    profile: str,
    scope: str | None,
    end: str | None,
) -> int:
    """Compare two runs: phases and critical-path composition side by side, with deltas."""
    if output is not None:
        run_library(check_output, output, force)
    options = Options(profile=profile, end=end, redact=not no_redact, scope=scope or "auto")
    name_a, ra = run_library(load_result, a, options)
    name_b, rb = run_library(load_result, b, options)
    if name_a == name_b:
        name_a, name_b = str(a), str(b)
    c = compare_results(ra, rb, name_a=name_a, name_b=name_b)
    click.echo(render_json(c) if as_json else render_text(c), nl=False)
    if output is not None:
        run_library(write_html, c, output, force=force)
        click.echo(f"wrote {output}", err=as_json)
    return 0
