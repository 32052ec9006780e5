"""Numbers that cannot drift: verdicts computed with units and resolution (bench/results.py), and
the README/docs tables rendered from a results file, checked by `make docs-check`
(bench/render.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import render
from bench import results as R


def le(v: float, unit: str) -> R.Goal:
    return {"op": "<=", "value": v, "unit": unit}


@pytest.mark.parametrize(
    ("median", "unit", "res", "goal", "want"),
    [
        (94.0, "MiB", 1 / 1024, le(100, "MB"), "met"),  # 94 MiB = 98.6 MB
        (96.0, "MiB", 1 / 1024, le(100, "MB"), "not met"),  # 96 MiB = 100.7 MB: MiB != MB
        (95.37, "MiB", 0.01, le(100, "MB"), "at the limit"),  # 100 MB = 95.367 MiB
        (0.15, "s", 0.01, le(0.15, "s"), "at the limit"),  # counted in 10 ms ticks
        (0.13, "s", 0.01, le(0.15, "s"), "met"),
        (0.16, "s", 0.01, le(0.15, "s"), "at the limit"),
        (0.17, "s", 0.01, le(0.15, "s"), "not met"),
        (140.0, "ms", 1.0, le(0.15, "s"), "met"),
        (1.117, "x", 0.001, le(1.03, "x"), "not met"),
        (0.99, "x", 0.001, le(1.03, "x"), "within noise"),
        (463_000, "events/s", 100_000, {"op": ">=", "value": 500_000, "unit": "events/s"},
         "at the limit"),
        (750_000, "events/s", 100_000, {"op": ">=", "value": 500_000, "unit": "events/s"},
         "met"),
        (1.0, "s", 0.01, None, None),
    ],
)
def test_verdicts_use_units_and_resolution(median: float, unit: str, res: float,
                                           goal: R.Goal | None, want: str | None) -> None:
    assert R.verdict(median, unit, res, goal) == want


def test_mib_and_ms_never_compare_across_dimensions() -> None:
    with pytest.raises(ValueError, match="cannot compare"):
        R.convert(1.0, "MiB", "s")


def _summary(*values: float) -> dict[str, float]:
    v = sorted(values)
    return {"n": len(v), "median": v[len(v) // 2], "min": v[0], "max": v[-1]}


def bench_result() -> dict[str, object]:
    """The shape bench/run.py's phases return (a small, made-up run: the render's input)."""
    tracer = {"ratio": _summary(1.10, 1.12, 1.20), "best_ratio": 1.09, "complete_runs": 3,
              "runs": 3, "collector_cpu_s": _summary(0.08, 0.09, 0.15)}
    return {
        "overhead": {"tracers": {"k3sprof": tracer}, "parallel": 1,
                     "expected_syscalls": {"connect": 18000, "execve": 600, "listen": 402}},
        "attach": {"line_s": _summary(0.21, 0.28, 0.32), "first_event_s": _summary(0.07, 0.1),
                   "stop_s": _summary(0.13, 0.17, 0.2), "peak_rss_mb": _summary(93.0, 94.0)},
        "throughput": {"steps": [{"target_rate": r} for r in (20_000, 100_000, 200_000)],
                       "max_lossless_rate": 190_000, "generator_ceiling": 757_000},
    }


def write_run(runs: Path, name: str, res: dict[str, object]) -> Path:
    doc = {"format": R.FORMAT, "date": "2026-12-06 22:00 UTC", "commit": "abc1234567",
           "command": "sudo make bench", "total_s": 540.0,
           "machine": {"cpus": 2, "cpu": "EPYC", "memory_gib": 23.5, "kernel": "6.18",
                       "distro": "Debian 12", "python": "3.11.2", "bcc": "0.26"},
           "load": {"start": 0.5, "end": 0.9}, "measures": R.measures(res), "raw": res}
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / name
    path.write_text(json.dumps(doc))
    return path


DOC = """# Performance

<!-- rendered:bench-summary (bench/render.py; do not edit) -->
stale
<!-- end rendered:bench-summary -->

Text after.
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(R, "RUNS", tmp_path / "bench" / "runs")
    monkeypatch.setattr(render, "ROOT", tmp_path)
    write_run(R.RUNS, "2026-12-01T1816Z.json", {})
    write_run(R.RUNS, "2026-12-06T2200Z.json", bench_result())
    (tmp_path / "README.md").write_text(DOC)
    return tmp_path


def test_tables_are_rendered_from_the_newest_results_file(repo: Path) -> None:
    readme = repo / "README.md"
    assert render.run(check=True, files=[readme], say=lambda s: None) == 1  # "stale"
    assert render.run(check=False, files=[readme], say=lambda s: None) == 0
    text = readme.read_text()
    assert "2026-12-06T2200Z.json" in text and "commit `abc1234567`" in text
    # the figures of the newest file, its n, and the computed verdicts
    assert "| 1.120x (1.100x - 1.200x, n=3); fastest/fastest 1.090x; 3/3 runs saw every " \
           "event | not met |" in text
    assert "| recorder CPU per burst (burst window incl. 1.5 s drain) | <= 0.15 s | 0.09 s " \
           "(0.08 s - 0.15 s, n=3) | met |" in text
    assert "| <= 100 MB | 94.0 MiB (93.0 MiB - 94.0 MiB, n=2) | met |" in text
    assert text.endswith("Text after.\n")
    assert render.run(check=True, files=[readme], say=lambda s: None) == 0


def test_docs_check_fails_when_a_digit_is_changed_by_hand(repo: Path) -> None:
    readme = repo / "README.md"
    render.run(check=False, files=[readme], say=lambda s: None)
    text = readme.read_text()
    # WHEN one digit of a rendered figure is edited
    edited = re.sub(r"1\.120x", "1.020x", text, count=1)
    assert edited != text
    readme.write_text(edited)
    said: list[str] = []
    # THEN the check fails and says which file and what to run
    assert render.run(check=True, files=[readme], say=said.append) == 1
    assert said and "README.md" in said[0] and "make docs" in said[0]


def test_no_results_file_is_a_clear_failure(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "RUNS", tmp_path / "none")
    said: list[str] = []
    assert render.run(check=True, files=[], say=said.append) == 1
    assert "sudo make bench" in said[0]


def test_kernel_matrix_table_is_rendered_from_its_imported_run(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a kernel matrix run's results as tests/kernels writes them
    out = repo / "reports" / "kernels"
    (out / "systemd").mkdir(parents=True)
    row = {"kernel": "6.1.0-57-amd64", "accel": "tcg", "result": "PASS",
           "tests": {"a": "passed", "b": "passed"}, "attach_s": 1.2, "compile_s": 1.1,
           "lost_events": 0, "events": {"process": 44, "socket": 20, "module": 18},
           "demo_events": {"module": 30}, "demo_s": 129.9,
           "warm": {"first_event_s": 8.97, "line_s": 41.67, "load_s": 2.11,
                    "loaded_from": "cache"}, "vm_s": 276.3}
    (out / "results.json").write_text(json.dumps([row]))
    (out / "systemd" / "delay.json").write_text(json.dumps({"boots": [
        {"boot": 1, "k3s_held_s": 35.24, "unit_start_to_ready_s": 35.21}]}))
    # WHEN it is imported and the docs rendered
    stored = render.import_kernels(out, "CI=true make test-kernels")
    assert stored.parent == R.RUNS and stored.name.startswith("kernels-")
    doc = repo / "kernels.md"
    doc.write_text("<!-- rendered:kernels (bench/render.py; do not edit) -->\n"
                   "<!-- end rendered:kernels -->\n")
    assert render.run(check=False, files=[doc], say=lambda s: None) == 0
    text = doc.read_text()
    # THEN the row is the run's, and the bench's newest file is not mistaken for it
    assert "| 6.1.0-57-amd64 | tcg | PASS (2/2) | 1.2 (1.1) | 44/20/18, 0 | 30, 129.9 | " \
           "8.97 / 41.67 (2.11) | 276.3 |" in text
    assert "boot 1: k3s.service held 35.24 s" in text and stored.name in text
    assert R.newest().name == "2026-12-06T2200Z.json"  # type: ignore[union-attr]


def test_the_stacks_sched_and_whatif_phases_become_measures_with_verdicts() -> None:
    """The phases issue 23, 24 and 28 measure, on made-up numbers: each figure in its unit,
    against the issue's goal, the verdict computed."""
    res = {
        "stacks": {
            "burst": {"scale": 2.0, "ratio_on_off": _summary(1.00, 1.01, 1.04)},
            "sampling": {"hz": 49, "sampler_cpu_fraction": _summary(0.0004, 0.0005, 0.0007),
                         "recorder_extra_fraction": _summary(0.001, 0.002)},
            "symbolise": {"samples": 1_000_000, "s": _summary(1.1, 1.2, 1.4)},
        },
        "sched": {
            "pingpong": {"trips": 200_000, "untraced_switches_per_s": _summary(900_000.0),
                         "ratio_sched": _summary(1.14, 1.15, 1.16),
                         "ratio_no_sched": _summary(1.04, 1.05), "lost_sched": [0, 0, 0]},
            "stop": {"exit_s": _summary(0.12, 0.13), "last_detach_s": _summary(3.5, 3.7, 3.9)},
        },
        "whatif_demo": {
            "base": {"interval_ms": 250.0, "recorded_ms": 1000.0}, "request_timeout_s": 0.08,
            "variants": [
                {"interval_ms": 100.0, "predicted_ms": 700.0,
                 "measured": _summary(690.0, 710.0, 760.0), "error_ms": 10.0,
                 "allowed_ms": 71.0},
                {"interval_ms": 500.0, "predicted_ms": 1500.0,
                 "measured": _summary(1300.0, 1350.0, 1400.0), "error_ms": 150.0,
                 "allowed_ms": 135.0},
            ],
        },
    }
    by = {m["id"]: m for m in R.measures(res)}
    assert by["stacks.burst.ratio"]["verdict"] == "met"  # 1.01 <= 1.02 by more than 0.001
    assert by["stacks.sampler_cpu"]["unit"] == "%"
    assert by["stacks.sampler_cpu"]["median"] == pytest.approx(0.05)
    assert by["stacks.sampler_cpu"]["verdict"] == "met"
    assert by["stacks.symbolise"]["verdict"] == "met"
    assert by["sched.pingpong.ratio"]["verdict"] == "not met"
    assert by["sched.stop.detach"]["verdict"] == "not met"
    assert by["whatif_demo.100ms"]["verdict"] == "met"
    assert by["whatif_demo.500ms"]["verdict"] == "not met"
    assert "measured 1350.0 ms (1300.0-1400.0, n=3)" in by["whatif_demo.500ms"]["note"]


def test_whatif_demo_with_several_base_recordings() -> None:
    """The what-if phase since it records the base several times: the prediction is the
    median of the per-recording ones, their spread and the base recordings' are in the row,
    and the verdict is on the median's error."""
    res = {"whatif_demo": {
        "base": {"interval_ms": 250.0, "recorded_ms": 1400.0, "bases": 3,
                 "recorded": _summary(980.0, 1400.0, 1750.0)},
        "request_timeout_s": 0.08,
        "variants": [{"interval_ms": 100.0, "predicted_ms": 1100.0,
                      "predicted_each": _summary(680.0, 1100.0, 1450.0),
                      "measured": _summary(1000.0, 1150.0, 1400.0), "error_ms": 50.0,
                      "allowed_ms": 115.0}],
    }}
    (m,) = R.measures(res)
    assert m["verdict"] == "met"
    assert "recorded 3 times at 250 ms: 1400.0 ms (980.0-1750.0)" in m["name"]
    assert "predicted 1100.0 ms (median of 3 recordings' predictions; each 680.0-1450.0)" \
        in m["note"]
