"""Build schema-valid Arrow tables from a few readable rows, for analyzer/report unit tests.

    process = table("process", [dict(ts_ns=ms(10), kind="fork", pid=2, ppid=1, comm="k3s")])

Missing columns are null; unknown column names fail loudly (a typo must not pass silently).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tracer import schema


def ms(x: float) -> int:
    """Milliseconds to trace nanoseconds (readable test times)."""
    return int(x * 1_000_000)


def table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    sch = schema.TABLES[name]
    names = set(sch.names)
    for r in rows:
        bad = set(r) - names
        if bad:
            raise KeyError(f"{name}: unknown column(s) {sorted(bad)}")
    cols = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in sch}
    return pa.Table.from_pydict(cols, schema=sch)


def trace(
    tmp_path: Any = None, meta: dict[str, Any] | None = None, **tables: list[dict[str, Any]]
) -> schema.Trace:
    """An in-memory Trace from rows per table (no files)."""
    from pathlib import Path

    m = {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "test", "start_ns": 0}
    m.update(meta or {})
    return schema.Trace(
        path=Path(tmp_path or "."),
        meta=m,
        tables={k: table(k, v) for k, v in tables.items()},
    )


def analyze_json(tr: schema.Trace, **options: Any) -> dict[str, Any]:
    """The real analyzer's `analyze --json` dict for a trace (tests of the JSON contract)."""
    from tracer.analyzer import analyze

    return analyze(tr, **options).to_json()
