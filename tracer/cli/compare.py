"""k3sprof compare."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.analyzer import Options
from tracer.cli import _options, cli, run_library
from tracer.report._output import check_output
from tracer.report.compare import compare as compare_two
from tracer.report.compare import render_json, render_text, write_html
from tracer.runs import compare as many
from tracer.runs import engine
from tracer.runs.page import write_runs_html

#: exit status when some inputs were skipped (bad traces) and the rest was compared
PARTIAL = 7

EPILOG = """\b
Each side is a trace directory, an `analyze --json` file, or a directory holding traces (every
trace under it, e.g. all boots of one version); --a/--b add more paths to a side.
With several runs per side: median, p10/p90 per side and the B - A difference of medians with a
95 % interval (docs/runs.md). Negative differences: B is faster.
Examples:
  k3sprof compare reports/v1.32.3.trace reports/v1.32.4.trace -o reports/compare.html
  k3sprof compare reports/box/v1.32.3+k3s1 reports/box/v1.32.4+k3s1 --json
  k3sprof compare --a run1.trace --a run2.trace --b run3.trace --b run4.trace
"""


@cli.command(epilog=EPILOG)
@click.argument("a", required=False, type=click.Path(path_type=Path))
@click.argument("b", required=False, type=click.Path(path_type=Path))
@click.option("--a", "more_a", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Another run (or directory of runs) for side A; repeatable.")
@click.option("--b", "more_b", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Another run (or directory of runs) for side B; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_options.output("Also write a self-contained HTML comparison here.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Analyse traces in N local processes (default: one per CPU).")
@_options.analysis(profile_help="Component profile used when A/B are traces.")
def compare(
    a: Path | None,
    b: Path | None,
    more_a: tuple[Path, ...],
    more_b: tuple[Path, ...],
    as_json: bool,
    output: Path | None,
    force: bool,
    options: Options,
    workers: int | None,
) -> int:
    """Compare runs of A with runs of B: phases, critical-path composition and waits."""
    side_a = [*([a] if a else []), *more_a]
    side_b = [*([b] if b else []), *more_b]
    if not side_a or not side_b:
        raise click.UsageError("give A and B (or --a PATH and --b PATH)")
    if output is not None:
        run_library(check_output, output, force)
    inputs_a = run_library(engine.discover, side_a)
    inputs_b = run_library(engine.discover, side_b)
    outcomes = run_library(engine.analyze_many, [*inputs_a, *inputs_b], options,
                           workers=workers or engine.default_workers())
    oa, ob = outcomes[: len(inputs_a)], outcomes[len(inputs_a):]
    bad = [o for o in outcomes if o.error]
    for side, oo in (("A", oa), ("B", ob)):
        if all(o.error for o in oo):
            if len(outcomes) == 2:  # today's two-trace compare: the trace's own error
                run_library(oo[0].raise_error)
            raise click.ClickException(f"side {side}: no readable run")
    for o in bad:
        click.echo(f"k3sprof: skipped {o.path}: {o.error}", err=True)
    ra = [(o.name, o.result()) for o in oa if not o.error]
    rb = [(o.name, o.result()) for o in ob if not o.error]
    name_a, name_b = _side_name(side_a, "A"), _side_name(side_b, "B")
    if name_a == name_b:
        name_a, name_b = " ".join(map(str, side_a)), " ".join(map(str, side_b))
    stats = many.compare_runs(ra, rb, name_a=name_a, name_b=name_b)
    if len(ra) == 1 and len(rb) == 1:
        two = compare_two(ra[0][1], rb[0][1], name_a=name_a, name_b=name_b)
        if as_json:
            click.echo(render_json({**two, "metrics": stats["metrics"],  # type: ignore[typeddict-unknown-key]
                                    "notes": stats["notes"]}), nl=False)
        else:
            click.echo(render_text(two), nl=False)
            click.echo("".join(f"note: {n}\n" for n in stats["notes"]), nl=False)
        if output is not None:
            run_library(write_html, two, output, force=force)
    else:
        click.echo(many.render_json(stats) if as_json else many.render_text(stats), nl=False)
        if output is not None:
            run_library(write_runs_html, stats, output, force=force)
    if output is not None:
        click.echo(f"wrote {output}", err=as_json)
    return PARTIAL if bad else 0


def _side_name(paths: list[Path], default: str) -> str:
    return engine.run_name(paths[0]) if len(paths) == 1 else default

