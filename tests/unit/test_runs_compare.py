"""compare with many runs: the statistics, and the planted difference (the issue's done-when).

Runs are made from a real recording (tests/data/etcd-start.trace: real BPF, real etcd) with a
planted delay inside its `sleep` (bench/synth.py): each run's startup is longer by exactly its
delay, which the analysis confirms (test_planted_delay_is_exact). Two sets of five runs differ
by a known 300 ms with noise (sd 60 ms) on both sides, drawn from a seeded generator.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.synth import ETCD_TRACE, shifted_trace  # noqa: E402
from tracer.analyzer import Options, load_and_analyze  # noqa: E402
from tracer.cli import main  # noqa: E402
from tracer.runs import stats  # noqa: E402
from tracer.runs.compare import compare_runs  # noqa: E402
from tracer.runs.page import render_runs_html  # noqa: E402

PLANTED_NS = 300_000_000
NOISE_NS = 60_000_000
BASE_NS = 400_000_000  # every run gets some delay, so the noise never asks for a negative one


def planted_sets(root: Path, seed: int, shift_b: int = PLANTED_NS) -> tuple[Path, Path]:
    """Five runs of A and five of B (B's delays larger by shift_b), in the lab's layout."""
    rng = random.Random(seed)
    for side, extra in (("a", 0), ("b", shift_b)):
        for i in range(5):
            delay = BASE_NS + extra + round(rng.gauss(0, NOISE_NS))
            shifted_trace(root / side / f"{i:03d}-run" / "trace", delay)
    return root / "a", root / "b"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return planted_sets(tmp_path_factory.mktemp("planted"), seed=27)


def compare_json(a: Path, b: Path, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    assert main(["compare", str(a), str(b), "--json", "--workers", "1"]) == 0
    return json.loads(capsys.readouterr().out)


def test_u_distribution_is_exact() -> None:
    """The exact U distribution equals brute-force enumeration of every arrangement."""
    for m, n in ((2, 3), (4, 4), (5, 5), (3, 6)):
        counts = [0] * (m * n + 1)
        for a_pos in itertools.combinations(range(m + n), m):
            b_pos = [i for i in range(m + n) if i not in a_pos]
            counts[sum(1 for i in a_pos for j in b_pos if i > j)] += 1
        total = sum(counts)
        cdf = list(itertools.accumulate(c / total for c in counts))
        assert stats._u_cdf(m, n) == pytest.approx(cdf)
    # the textbook critical value: n = m = 5, two-sided 0.05 -> U <= 2, interval D(3)..D(23)
    assert stats._k(5, 5, 0.05) == (3, pytest.approx(1 - 2 * 4 / 252))
    assert stats._k(3, 3, 0.05) is None  # 3 vs 3 runs can never reach 95 %


def test_shift_interval_on_known_samples() -> None:
    s = stats.shift([10, 11, 12, 13, 14], [20, 21, 22, 23, 24])
    assert (s.diff_ns, s.shift_ns, s.ci_ns, s.significant) == (10, 10, (7, 13), True)
    s = stats.shift([10, 11, 12, 13, 14], [10, 11, 12, 13, 15])
    assert s.ci_ns == (-3, 3) and not s.significant
    one = stats.shift([10], [20])
    assert one.ci_ns is None and not one.significant
    assert "no interval" in (one.why_no_interval or "")


def test_normal_approximation_meets_the_exact_one() -> None:
    """Above EXACT_MAX_MN the normal approximation is used: at 50 x 50 both give the same k."""
    exact = stats._k(50, 50, 0.05)
    assert exact is not None
    saved = stats.EXACT_MAX_MN
    try:
        stats.EXACT_MAX_MN = 0
        approx = stats._k(50, 50, 0.05)
    finally:
        stats.EXACT_MAX_MN = saved
    assert approx is not None and abs(approx[0] - exact[0]) <= 1


def test_planted_delay_is_exact(tmp_path: Path) -> None:
    """The ground truth of the synthesis: the analysis' total grows by exactly the delay."""
    base = load_and_analyze(ETCD_TRACE, Options()).total_ns
    moved = load_and_analyze(shifted_trace(tmp_path / "t", 123_456_789), Options()).total_ns
    assert base is not None and moved == base + 123_456_789


def test_planted_difference_is_found(
    planted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    c = compare_json(*planted, capsys)
    total = next(m for m in c["metrics"] if m["name"] == "total")
    assert set(total) >= {"name", "a", "b", "diff_ns", "diff_ci_ns", "significant"}
    assert set(total["a"]) >= {"n", "median_ns", "p10_ns", "p90_ns"}
    assert total["a"]["n"] == total["b"]["n"] == 5
    low, high = total["diff_ci_ns"]
    assert low <= PLANTED_NS <= high, total
    assert low > 0 and total["significant"] is True
    # the delay sits inside the sleep: the child wait carries it, the process's own run does not
    by = {m["name"]: m for m in c["metrics"]}
    assert by["path:wait:child"]["significant"] is True
    assert by["path:run"]["significant"] is False


def test_same_distribution_is_not_significant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = planted_sets(tmp_path, seed=7, shift_b=0)
    total = next(m for m in compare_json(a, b, capsys)["metrics"] if m["name"] == "total")
    low, high = total["diff_ci_ns"]
    assert low <= 0 <= high and total["significant"] is False


def test_medians_are_the_runs_medians(planted: tuple[Path, Path]) -> None:
    """Per-side figures are the plain median / percentiles of each run's own total."""
    import numpy as np

    runs = [(p.parent.name, load_and_analyze(p, Options()))
            for p in sorted(planted[0].glob("*/trace"))]
    totals = [a.total_ns for _, a in runs]
    c = compare_runs(runs, runs)
    total = c["metrics"][0]
    assert total["name"] == "total"
    assert total["a"]["median_ns"] == round(float(np.median(totals)))
    assert total["a"]["values_ns"] == totals
    assert total["diff_ns"] == 0 and not total["significant"]


def test_text_and_page(planted: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                       tmp_path: Path) -> None:
    out = tmp_path / "c.html"
    assert main(["compare", str(planted[0]), str(planted[1]), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"total\s+5\s.*\byes$", text, re.M), text
    page = out.read_text()
    assert page.count("Plotly.newPlot(") == 4  # the differences + three groups of runs
    assert not re.search(r"<script[^>]+src=", page)
    import plotly.offline

    assert page.count(plotly.offline.get_plotlyjs()[:300]) == 1  # inlined once, offline
    runs = [(f"r{i}", load_and_analyze(p, Options()))
            for i, p in enumerate(sorted(planted[0].glob("*/trace")))]
    again = compare_runs(runs, runs, name_a="</script><b>", name_b="x")
    assert "</script><b>" not in render_runs_html(again)


def test_several_paths_and_a_bad_trace_among_them(
    planted: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--a/--b add paths to a side; a corrupt trace is named and skipped, exit status 7."""
    bad = tmp_path / "bad.trace"
    bad.mkdir()
    (bad / "meta.json").write_text("{not json")
    runs_a = sorted(planted[0].glob("*/trace"))
    argv = ["compare", "--workers", "1", "--json"]
    for p in runs_a[:3]:
        argv += ["--a", str(p)]
    argv += ["--a", str(bad), "--b", str(planted[1])]
    assert main(argv) == 7
    cap = capsys.readouterr()
    assert f"skipped {bad}" in cap.err and "corrupt metadata" in cap.err
    assert json.loads(cap.out)["a"]["n"] == 3


def test_one_run_per_side_is_todays_comparison(
    planted: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a = sorted(planted[0].glob("*/trace"))[0]
    b = sorted(planted[1].glob("*/trace"))[0]
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "critical path total" in text and "no interval can be given" in text
    assert main(["compare", str(a), str(b), "--json"]) == 0
    j = json.loads(capsys.readouterr().out)
    assert j["total"]["delta_ns"] is not None and j["metrics"][0]["diff_ci_ns"] is None


def test_empty_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty"), str(ETCD_TRACE)]) == 2
    assert "no trace in this directory" in capsys.readouterr().err


def test_too_few_runs_give_no_interval(planted: tuple[Path, Path]) -> None:
    """3 against 3 runs can never reach 95 %: no interval, not significant, and it says so."""
    from tracer.runs.compare import render_text

    runs = [(p.parent.name, load_and_analyze(p, Options()))
            for p in sorted(planted[0].glob("*/trace"))[:3]]
    others = [(p.parent.name, load_and_analyze(p, Options()))
              for p in sorted(planted[1].glob("*/trace"))[:3]]
    c = compare_runs(runs, others)
    total = c["metrics"][0]
    assert total["diff_ci_ns"] is None and total["significant"] is False
    assert total["diff_ns"] is not None and total["diff_ns"] > 0
    assert "note: 3 and 3 runs are too few for a 95% interval" in render_text(c)
