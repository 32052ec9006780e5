"""dataset --cluster: a real Dask cluster on loopback (a scheduler and two worker processes the
test starts with Dask's own `dask scheduler` / `dask worker`) analyses the traces; the dataset
equals the one the local process pool writes, and the analyses ran in the worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_runs_compare import planted_sets
from tracer.analyzer import Options
from tracer.cli import main
from tracer.runs import engine

DASK = Path(sys.executable).parent / "dask"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, set[int]]]:
    """(scheduler address, the two workers' pids)."""
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    log = (d / "log").open("w")  # closed in the finally below
    common = {"cwd": d, "stdout": subprocess.DEVNULL, "stderr": log, "start_new_session": True}
    procs = [subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)], **common)]  # type: ignore[call-overload]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, (d / "log").read_text()
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written whole before the scheduler accepts; be safe
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(d)],
                **common))  # type: ignore[call-overload]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            pids = set(client.run(os.getpid).values())
        assert pids == {p.pid for p in procs[1:]}  # the workers are the processes we started
        yield address, pids
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return planted_sets(tmp_path_factory.mktemp("planted"), seed=27)


def test_analyses_run_on_the_cluster_workers(
    cluster: tuple[str, set[int]], planted: tuple[Path, Path]
) -> None:
    address, pids = cluster
    paths = engine.discover([planted[0], planted[1]])
    out = engine.analyze_many(paths, Options(), cluster=address)
    assert [o.path for o in out] == [str(p) for p in paths]  # in input order
    assert all(o.error is None for o in out)
    used = {int(o.worker.rsplit(":", 1)[1]) for o in out}
    assert used <= pids and os.getpid() not in used
    local = engine.analyze_many(paths, Options(), workers=1)
    assert [o.analysis for o in out] == [o.analysis for o in local]


def test_dataset_on_the_cluster_equals_the_local_one(
    cluster: tuple[str, set[int]], planted: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, _ = cluster
    bad = tmp_path / "bad.trace"
    bad.mkdir()
    (bad / "meta.json").write_text("[]")
    remote, local = tmp_path / "remote", tmp_path / "local"
    assert main(["dataset", str(planted[0]), str(bad), "-o", str(remote),
                 "--cluster", address]) == 7
    assert f"skipped {bad}" in capsys.readouterr().err
    assert main(["dataset", str(planted[0]), "-o", str(local), "--workers", "2"]) == 0
    sql = "SELECT run_id, run, total_ns FROM runs ORDER BY run_id"
    capsys.readouterr()
    assert main(["query", str(remote), sql, "--json"]) == 0
    a = capsys.readouterr().out
    assert main(["query", str(local), sql, "--json"]) == 0
    assert a == capsys.readouterr().out and len(a.splitlines()) == 5


def test_an_unreachable_cluster_is_one_line(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", str(planted[0]), "-o", str(tmp_path / "d"),
                 "--cluster", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the scheduler" in err and len(err.splitlines()) == 1
