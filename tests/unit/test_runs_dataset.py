"""dataset + query: the planted runs as a Parquet dataset, read back through DuckDB, give
compare's medians; appending rewrites nothing; bad traces are skipped by name; a failed
write leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bench.synth import ETCD_TRACE
from tests.unit.test_runs_compare import planted_sets
from tracer.cli import main
from tracer.runs import dataset as ds


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return planted_sets(tmp_path_factory.mktemp("planted"), seed=27)


@pytest.fixture(scope="module")
def dataset(planted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "runs.parquet"
    assert main(["dataset", str(planted[0]), "-o", str(out), "--label", "a", "--workers", "2"]) == 0
    assert main(["dataset", str(planted[1]), "-o", str(out), "--label", "b", "--workers", "1"]) == 0
    return out


def query_json(d: Path, sql: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["query", str(d), sql, "--json"]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_query_gives_compares_medians(
    planted: tuple[Path, Path], dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(planted[0]), str(planted[1]), "--json", "--workers", "1"]) == 0
    c = json.loads(capsys.readouterr().out)
    got = query_json(dataset, "SELECT name, label, count(*) AS n, median(value_ns) AS med "
                     "FROM metrics GROUP BY ALL", capsys)
    by = {(r["name"], r["label"]): r for r in got}
    assert len(c["metrics"]) >= 5
    for m in c["metrics"]:
        for side in ("a", "b"):
            row = by[(m["name"], side)]
            assert row["n"] == m[side]["n"]
            assert round(row["med"]) == m[side]["median_ns"], (m["name"], side)
    # and straight from the runs table, without the metrics table
    runs = query_json(dataset, "SELECT label, median(total_ns) AS med FROM runs GROUP BY label "
                      "ORDER BY label", capsys)
    total = next(m for m in c["metrics"] if m["name"] == "total")
    assert [round(r["med"]) for r in runs] == [total["a"]["median_ns"], total["b"]["median_ns"]]


def test_tables_partitions_and_schema(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = json.loads((dataset / ds.INFO_FILE).read_text())
    assert info["dataset_version"] == ds.DATASET_VERSION
    assert set(info["tables"]) == {"runs", "segments", "waits", "phases", "processes",
                                   "components", "metrics"}
    rows = query_json(dataset, "SELECT DISTINCT label, node, boot FROM runs ORDER BY label",
                      capsys)
    # the recording's own hostname and boot id (tests/data/etcd-start.trace/meta.json)
    meta = json.loads((ETCD_TRACE / "meta.json").read_text())
    assert rows == [{"label": s, "node": meta["hostname"], "boot": meta["boot_id"]}
                    for s in ("a", "b")]
    f = next((dataset / "segments").glob("**/*.parquet"))
    assert pq.read_schema(f).metadata[b"k3sprof.dataset_version"] == ds.DATASET_VERSION.encode()
    segs = query_json(dataset, "SELECT run_id, sum(s.duration_ns) AS path, "
                      "any_value(r.total_ns) AS total FROM segments s JOIN runs r "
                      "USING (run_id) GROUP BY run_id", capsys)
    assert len(segs) == 10 and all(r["path"] == r["total"] for r in segs)  # the path sums


def test_append_rewrites_nothing(planted: tuple[Path, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    assert main(["dataset", str(planted[0]), "-o", str(out), "--workers", "1"]) == 0
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
              for p in out.rglob("*") if p.is_file()}
    assert main(["dataset", str(planted[1]), "-o", str(out), "--workers", "1"]) == 0
    after = {p for p in out.rglob("*") if p.is_file()}
    assert all((p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) == v
               for p, v in before.items())
    assert len(after - set(before)) == len(ds.TABLES)  # one new part file per table
    # the same traces again: already there, not added twice
    capsys.readouterr()
    assert main(["dataset", str(planted[1]), "-o", str(out), "--workers", "1"]) == 0
    assert "added 0 runs" in capsys.readouterr().out
    assert query_json(out, "SELECT count(*) AS n FROM runs", capsys) == [{"n": 10}]


def test_bad_traces_are_skipped_by_name(planted: tuple[Path, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    good = sorted(planted[0].glob("*/trace"))
    corrupt = tmp_path / "corrupt.trace"
    shutil.copytree(good[0], corrupt)
    (corrupt / "meta.json").write_text("{")
    newer = tmp_path / "newer.trace"
    shutil.copytree(good[0], newer)
    meta = json.loads((newer / "meta.json").read_text())
    meta["schema_version"] = "99.0"
    (newer / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "d"
    capsys.readouterr()
    argv = ["dataset", *map(str, good[:2]), str(corrupt), str(newer), "-o", str(out)]
    assert main([*argv, "--workers", "2"]) == 7
    err = capsys.readouterr().err
    assert f"skipped {corrupt}" in err and f"skipped {newer}" in err and "schema 99.0" in err
    assert query_json(out, "SELECT count(*) AS n FROM runs", capsys) == [{"n": 2}]


def test_a_failed_write_leaves_nothing(planted: tuple[Path, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "d"
    assert main(["dataset", str(planted[0]), "-o", str(out), "--workers", "1"]) == 0
    before = sorted(p for p in out.rglob("*"))
    calls = []
    real_write = pq.write_table

    def full_disk(table: object, where: object, **kw: object) -> None:
        calls.append(where)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_write(table, where, **kw)

    monkeypatch.setattr(pq, "write_table", full_disk)
    monkeypatch.setattr(ds, "existing_run_ids", lambda out: set())
    assert main(["dataset", str(planted[1]), "-o", str(out), "--workers", "1"]) == 1
    assert sorted(p for p in out.rglob("*")) == before  # no part file, no temporary left


def test_refuses_what_it_cannot_append_to(tmp_path: Path, planted: tuple[Path, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["dataset", str(planted[0]), "-o", str(other)]) == 2
    assert "not a k3sprof dataset" in capsys.readouterr().err
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / ds.INFO_FILE).write_text(json.dumps({"dataset_version": "9"}))
    assert main(["dataset", str(planted[0]), "-o", str(newer)]) == 2
    assert main(["query", str(newer), "SELECT 1"]) == 2
    assert main(["query", str(tmp_path / "none"), "SELECT 1"]) == 2


def test_query_errors_are_one_line(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["query", str(dataset), "SELEC nothing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("k3sprof: error: query:") and len(err.splitlines()) == 1


def test_a_batch_without_its_runs_file_is_invisible(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The writer moves runs files last: other tables' rows of a run not in runs are hidden."""
    d = tmp_path / "copy"
    shutil.copytree(dataset, d)
    for f in (d / "runs").glob("label=b/**/*.parquet"):
        f.unlink()
    rows = query_json(d, "SELECT DISTINCT label FROM segments", capsys)
    assert rows == [{"label": "a"}]


def test_the_benchmark_runs(tmp_path: Path) -> None:
    """bench/dataset.py end to end at a tiny size (its own check: the dataset has every run)."""
    from bench import dataset as bench

    out = tmp_path / "r.json"
    assert bench.main(["--traces", "4", "--workers", "1,2", "--dask", "0", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [x["config"] for x in r["rows"]] == ["1 local worker", "2 local workers"]
    assert r["rows"][0]["speedup"] == 1.0 and all(x["per_trace_ms"] > 0 for x in r["rows"])
