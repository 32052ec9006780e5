"""Stack components across many runs: `component:NAME` metrics in `compare`, and the dataset's
`components` table, on planted sample counts.

The runs are `analyze --json` files of the real etcd capture (tests/data/etcd-start.trace)
given a `stacks` section with planted on-CPU samples per component (as the stacks pass writes
it): side B's apiserver has 300 more samples at 100 Hz (3 s more CPU) with seeded noise on
both sides, its scheduler the same distribution as A's. The stacks pass itself is checked
against the gok3s stand-in's written truth (tests/integration/test_gok3s_components.py); this
checks what the many-run layer does with its output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.synth import ETCD_TRACE
from tracer.analyzer import Options, load_and_analyze
from tracer.cli import main

HZ = 100
PLANTED_SAMPLES = 300
PLANTED_NS = PLANTED_SAMPLES * 1_000_000_000 // HZ


def _runs(root: Path, seed: int) -> tuple[list[str], list[str]]:
    base = load_and_analyze(ETCD_TRACE, Options()).to_json()
    rng = random.Random(seed)
    for side, extra in (("a", 0), ("b", PLANTED_SAMPLES)):
        for i in range(5):
            api = 1000 + extra + round(rng.gauss(0, 40))
            sched = 400 + round(rng.gauss(0, 40))
            total = api + sched
            a = dict(base)
            a["stacks"] = {
                "start_ns": base["start_ns"], "end_ns": base["end_ns"], "sample_hz": HZ,
                "cpu_samples": total, "event_stacks": {},
                "by_component": [
                    {"component": "kube-apiserver", "samples": api,
                     "pct": round(100 * api / total, 2)},
                    {"component": "kube-scheduler", "samples": sched,
                     "pct": round(100 * sched / total, 2)},
                ],
                "folded": [], "folded_left_out": 0, "segments": [], "lanes": None,
                "problems": [],
            }
            d = root / side / f"{i:03d}.json"
            d.parent.mkdir(parents=True, exist_ok=True)
            d.write_text(json.dumps(a))
    return ([str(p) for p in sorted((root / "a").glob("*.json"))],
            [str(p) for p in sorted((root / "b").glob("*.json"))])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    return _runs(tmp_path_factory.mktemp("components"), seed=23)


def _sides(runs: tuple[list[str], list[str]]) -> list[str]:
    return [*(x for p in runs[0] for x in ("--a", p)), *(x for p in runs[1] for x in ("--b", p))]


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_compare_finds_the_planted_component_and_not_the_unchanged_one(
    runs: tuple[list[str], list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    c = _json(capsys, "compare", *_sides(runs), "--json", "--workers", "1")
    assert isinstance(c, dict)
    by = {m["name"]: m for m in c["metrics"]}
    api, sched = by["component:kube-apiserver"], by["component:kube-scheduler"]
    assert api["a"]["n"] == api["b"]["n"] == 5
    lo, hi = api["diff_ci_ns"]
    assert api["significant"] and lo <= PLANTED_NS <= hi and lo > 0, api
    assert not sched["significant"], sched


def test_the_dataset_components_table_gives_compares_medians(
    runs: tuple[list[str], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    for side in ("a", "b"):
        paths = runs[0] if side == "a" else runs[1]
        assert main(["dataset", *paths, "-o", str(out), "--label", side, "--workers", "1"]) == 0
    c = _json(capsys, "compare", *_sides(runs), "--json", "--workers", "1")
    assert isinstance(c, dict)
    capsys.readouterr()
    sql = ("SELECT component, label, count(*) AS n, median(cpu_ns) AS med, sum(samples) AS s "
           "FROM components GROUP BY ALL")
    assert main(["query", str(out), sql, "--json"]) == 0
    got = {(r["component"], r["label"]): r
           for r in map(json.loads, capsys.readouterr().out.splitlines())}
    for m in c["metrics"]:
        if not m["name"].startswith("component:"):
            continue
        name = m["name"].split(":", 1)[1]
        for side in ("a", "b"):
            assert got[(name, side)]["n"] == 5
            assert round(got[(name, side)]["med"]) == m[side]["median_ns"], (name, side)
