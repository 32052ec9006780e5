"""The dataset benchmark at its full size, in CI (issue 27: "the cluster test and the benchmark run
in CI"): bench/dataset.py synthesises 1,000 traces from a real recording and builds the dataset
with 1, 2 and 4 local workers and on a loopback Dask cluster of two worker processes it starts.

Timing is not asserted here (timing goals live in bench/, and CI machines differ); what is
asserted could fail: every configuration's dataset holds exactly the 1,000 runs (bench/dataset.py
queries each one back through `k3sprof query` and stops otherwise), and the analyses really ran
where the configuration says: the Dask workers' own CPU time, read from /proc for the two worker
processes, is most of what one local worker spends on the same traces. A client that analysed
everything itself would leave the workers idle and fail that bound."""

from __future__ import annotations

import json
from pathlib import Path

from bench import dataset as bench

TRACES = 1000


def test_the_full_dataset_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "dataset.json"
    assert bench.main(["--traces", str(TRACES), "--workers", "1,2,4", "--dask", "2",
                       "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["traces"] == TRACES
    rows = {x["config"]: x for x in r["rows"]}
    assert list(rows) == ["1 local worker", "2 local workers", "4 local workers",
                          "Dask, 2 workers on loopback"]
    one = rows["1 local worker"]["cpu_s"]
    assert one > 0
    for name, row in rows.items():
        # the CPU of whoever analysed the traces: the pool's children, or the Dask workers
        assert row["cpu_s"] >= 0.5 * one, (name, row["cpu_s"], one)
        assert len(row["runs"]) == 1 and row["per_trace_ms"] > 0
    # and on the cluster, the two worker processes did it, not the client
    dask = rows["Dask, 2 workers on loopback"]["runs"][0]
    assert dask["worker_cpu_s"] >= 0.5 * one, (dask, one)
