"""What-if's incremental replay (engine._Scenario.warm_from) against the full replay.

suggest() replays each candidate recomputing only the waits the change can move
(Graph.affected); every other wait keeps the unchanged replay's end. That is only right if
`affected` misses nothing a change reaches. Checked here by replaying, both ways, every
candidate and a wider set of single changes (each process faster, each helper removed, each
polled endpoint at 1 ms, each pair of helpers started side by side) on a hand-built startup,
the two golden recordings and a synthetic k3s-shaped trace: the predicted start and end must
be identical, to the nanosecond.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.scale import write_trace
from tests.unit.test_whatif import planted
from tracer._errors import UsageError
from tracer.analyzer import Analysis, Options, load_and_analyze
from tracer.whatif import parse
from tracer.whatif.engine import Graph, _run, _Scenario, candidates

DATA = Path(__file__).resolve().parents[1] / "data"


def _changes(g: Graph) -> list[str]:
    out = list(candidates(g))
    keys = sorted(g.procs)
    # spread over the trace, not just its first processes
    step = max(1, len(keys) // 120)
    out += [f"faster:{k}=3" for k in keys[::step]]
    out += [f"remove:{k}" for k in keys[::step] if k not in g.end_line]
    helpers = sorted({w.target for w in g.waits if w.kind == "child" and w.target in g.procs})
    out += [f"parallel:{x},{y}" for x, y in itertools.islice(itertools.pairwise(helpers), 40)]
    out += sorted({f"poll:{w.endpoint}=1ms" for w in g.waits if w.kind == "poll" and w.endpoint})
    return out


def _same_as_full(a: Analysis) -> int:
    g = Graph(a)
    base = _Scenario(g, [])
    base.warm()
    moved = 0
    for text in _changes(g):
        try:
            change = parse(text)
            _, s_full, e_full = _run(g, [change])
        except UsageError:
            continue
        _, s_inc, e_inc = _run(g, [change], base)
        assert (s_inc, e_inc) == (s_full, e_full), text
        moved += e_full != g.end_ns
    return moved


def test_hand_built_startup() -> None:
    assert _same_as_full(planted()) >= 3


def test_golden_recordings() -> None:
    gok3s = load_and_analyze(DATA / "gok3s-start.trace",
                             Options(end="log:k3s is up and running"))
    assert _same_as_full(gok3s) >= 3
    assert _same_as_full(load_and_analyze(DATA / "etcd-start.trace", Options())) >= 1


@pytest.mark.parametrize("events", [20_000])
def test_synthetic_k3s_shaped_trace(tmp_path: Path, events: int) -> None:
    write_trace(tmp_path / "t.trace", events)
    assert _same_as_full(load_and_analyze(tmp_path / "t.trace", Options())) >= 3
