"""SQL over a many-runs dataset with DuckDB (the embedded default; docs/runs.md, "Query").

Each table of the dataset is a view of the same name (runs, segments, waits, phases,
processes, metrics) with the Hive partition columns label, node and boot. The views of the
tables other than runs keep only rows whose run is in runs: a batch becomes visible when its
runs file is in place, which the writer does last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracer._errors import TracerError, UsageError
from tracer.runs.dataset import INFO_FILE, TABLES, check_dir


def _lit(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def run(dataset: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of one SQL statement over the dataset at `dataset`."""
    import duckdb

    if not (dataset / INFO_FILE).is_file():
        raise UsageError(f"{dataset}: not a k3sprof dataset (no {INFO_FILE}; "
                         "make one with: k3sprof dataset TRACES... -o DIR)")
    check_dir(dataset)
    con = duckdb.connect(":memory:")
    try:
        for name, schema in TABLES.items():
            files = sorted((dataset / name).glob("**/*.parquet"))
            if files:
                src = (f"read_parquet({_lit(dataset / name)} || '/**/*.parquet', "
                       "hive_partitioning = true, hive_types_autocast = false, "
                       "union_by_name = true)")
            else:  # an empty table still has its columns
                cols = ", ".join(f"NULL::VARCHAR AS {c}" for c in (*schema.names, "label",
                                                                     "node", "boot"))
                src = f"(SELECT {cols} WHERE false)"
            where = "" if name == "runs" else " WHERE run_id IN (SELECT run_id FROM runs)"
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {src}{where}")
        try:
            cur = con.execute(sql)
        except duckdb.Error as e:
            raise UsageError(f"query: {str(e).splitlines()[0]}") from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()
    except duckdb.Error as e:
        first = str(e).splitlines()[0]
        raise TracerError(f"{dataset}: cannot read the dataset ({first})") from None
    finally:
        con.close()
