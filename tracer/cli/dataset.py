"""k3sprof dataset."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.analyzer import Options
from tracer.cli import _options, cli, run_library
from tracer.runs import dataset as ds
from tracer.runs import engine

#: exit status when some traces were skipped (unreadable) and the rest was written
PARTIAL = 7

EPILOG = """\b
TRACES are trace directories, `analyze --json` files, or directories holding traces.
Appending to an existing dataset adds files; nothing already there is rewritten.
Examples:
  k3sprof dataset reports/box/v1.32.3+k3s1 -o runs.parquet --label v1.32.3
  k3sprof dataset reports/box/v1.32.4+k3s1 -o runs.parquet --label v1.32.4 --workers 2
  k3sprof dataset /shared/traces -o /shared/runs --cluster tcp://scheduler:8786
  k3sprof query runs.parquet "SELECT label, median(total_ns)/1e6 AS ms FROM runs GROUP BY label"
"""


@cli.command(epilog=EPILOG)
@click.argument("traces", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", "out", required=True, type=click.Path(path_type=Path),
              help="Dataset directory (created, or appended to).")
@click.option("--label", default="default", show_default=True,
              help="Partition label of these runs (e.g. the k3s version).")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Local analysis processes (default: one per CPU).")
@click.option("--cluster", metavar="tcp://HOST:PORT",
              help="Analyse on this Dask scheduler's workers instead (they must see the paths).")
@_options.analysis()
def dataset(
    traces: tuple[Path, ...],
    out: Path,
    label: str,
    workers: int | None,
    cluster: str | None,
    options: Options,
) -> int:
    """Write the analyses of many traces as a Parquet dataset (query it with `k3sprof query`)."""
    run_library(ds.check_dir, out)
    inputs = run_library(engine.discover, list(traces))
    outcomes = run_library(engine.analyze_many, inputs, options,
                           workers=workers or engine.default_workers(), cluster=cluster)
    for o in outcomes:
        if o.error:
            click.echo(f"k3sprof: skipped {o.path}: {o.error}", err=True)
    done = run_library(ds.write, outcomes, out, label=label)
    already = f", {len(done.already)} already there" if done.already else ""
    click.echo(f"{out}: added {len(done.added)} runs ({done.files} files){already}, "
               f"skipped {len(done.skipped)}")
    return PARTIAL if done.skipped else 0
