"""k3sprof query."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tracer.cli import cli, run_library
from tracer.runs import query as q

EPILOG = """\b
Tables: runs, segments, waits, phases, processes, metrics (docs/runs.md), each with the
partition columns label, node and boot.
Example:
  k3sprof query runs.parquet "SELECT label, count(*) AS n, median(total_ns)/1e6 AS ms
                              FROM runs GROUP BY label ORDER BY label"
"""


@cli.command(epilog=EPILOG)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.argument("sql")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per row.")
def query(dataset: Path, sql: str, as_json: bool) -> int:
    """Run SQL (DuckDB) over a dataset written by `k3sprof dataset`."""
    cols, rows = run_library(q.run, dataset, sql)
    if as_json:
        for r in rows:
            click.echo(json.dumps(dict(zip(cols, r)), default=str, sort_keys=False))
        return 0
    cells: list[list[str]] = [cols, *[["NULL" if v is None else str(v) for v in r] for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    for line in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    return 0
