"""How often poll detection finds a "loop" in random traffic (docs/analyze.md's figures).

    .venv/bin/python -m bench.poll_false_positives [--sequences 3000]

Seeded, no root, a few seconds. Two kinds of traffic of one (waiter, endpoint) group:
* Poisson connects (5-60 per sequence, 100 ms mean gap), no answers: `find_series`;
* the same with an answer placed uniformly between each attempt and the next (70 % of the
  attempts; the rest unanswered), as scheduler data gives them: `find_series_answered`,
  with and without the stalled-attempt rule (`_late`).
Prints the sequences in which a series was found and the attempts in series. To compare with
an earlier analyzer, check out its tracer/analyzer/polls.py and run this again (the earlier
figures in docs/analyze.md were taken so).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import numpy as np

from tracer.analyzer import polls


def _sequences(n_seq: int, answered: bool) -> list[tuple[list[int], list[int | None]]]:
    rng = random.Random(11)
    out = []
    for _ in range(n_seq):
        n = rng.randint(5, 60)
        t = np.cumsum([rng.expovariate(1 / 100e6) for _ in range(n)]).astype(np.int64).tolist()
        ans: list[int | None] = [None] * n
        if answered:
            ans = [None if k + 1 == n or rng.random() < 0.3 else int(rng.uniform(t[k], t[k + 1]))
                   for k in range(n)]
        out.append((t, ans))
    return out


def measure(n_seq: int = 3000) -> dict[str, Any]:
    res: dict[str, Any] = {"sequences": n_seq}
    plain = [polls.find_series(t) for t, _ in _sequences(n_seq, False)]
    res["poisson"] = {"with_series": sum(bool(s) for s in plain),
                      "attempts": sum(len(x.indices) for s in plain for x in s)}
    seqs = _sequences(n_seq, True)
    late = getattr(polls, "_late", None)  # absent in analyzers before the rule
    for label in ("answered", "answered_without_late"):
        if label == "answered_without_late" and late is not None:
            polls._late = lambda *a: False
        try:
            got = [polls.find_series_answered(t, a) for t, a in seqs]
        finally:
            if late is not None:
                polls._late = late
        res[label] = {"with_series": sum(bool(s) for s in got),
                      "attempts": sum(len(x.indices) for s in got for x in s)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sequences", type=int, default=3000)
    res = measure(ap.parse_args().sequences)
    for k in ("poisson", "answered", "answered_without_late"):
        print(f"{k}: a series in {res[k]['with_series']} of {res['sequences']} sequences, "
              f"{res[k]['attempts']} attempts in series")


if __name__ == "__main__":
    main()
