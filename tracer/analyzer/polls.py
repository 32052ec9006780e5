"""Poll-loop detection: regular cadences in one waiter's connects to one endpoint.

Contract: ``find_series(times) -> list[Series]`` over the sorted attempt times (ns) of ONE
(waiter process, endpoint) group. A series is a chain of at least ``MIN_ATTEMPTS`` attempts in
which each gap is within ``REL_TOL`` (or ``ABS_TOL_NS``) of the chain's median gap. Chains are
followed through other connects of the same group (k3s's readiness poller shares the k3s process
with the kubelet, the tunnel, ...), so a series need not be consecutive, but:

* ``purity`` = chain attempts / all the group's attempts in the chain's span. Random traffic can
  hold a few evenly spaced points among many; a real poller dominates its span.
* ``confidence`` = purity x regularity x support, where regularity = 1 - (median absolute
  deviation of the gaps / median gap) / REL_TOL and support = min(1, (attempts - 1) / 4).
  A series is reported when confidence >= MIN_CONFIDENCE and, for short chains (< 5 attempts),
  only when nothing else interleaves (purity 1).

Go timers drift and sliding pollers add the request time to the interval, hence the tolerance.
Large groups (> ``MAX_CHAIN_GROUP`` attempts) are only checked for consecutive runs (vectorized).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_ATTEMPTS = 3
REL_TOL = 0.10
ABS_TOL_NS = 2_000_000
MIN_INTERVAL_NS = 5_000_000  # faster than 5 ms is a burst, not a poll loop
MIN_PURITY = 0.6
MAX_CHANCE = 0.01
MAX_TYPICAL_ERROR = 0.03
JITTER_FLOOR_NS = 200_000
JITTER_FLOOR_REL = 0.002
SECOND_CANDIDATES = 3  # how far to look for the second attempt past interleaved connects
MAX_CHAIN_GROUP = 2000


@dataclass
class Series:
    indices: list[int]  # positions in the group's sorted times
    interval_ns: int  # median gap
    purity: float
    regularity: float
    confidence: float
    chance: float  # expected number of such chains in random traffic of this group
    typical_error: float  # median relative error of each attempt against the cadence so far


def _tol(p: float) -> float:
    return max(REL_TOL * p, ABS_TOL_NS)


def _score(t: npt.NDArray[np.int64], chain: list[int]) -> Series:
    gaps = np.diff(t[chain]).astype(np.float64)
    med = float(np.median(gaps))
    mad = float(np.median(np.abs(gaps - med)))
    regularity = max(0.0, 1.0 - (mad / med) / REL_TOL) if med > 0 else 0.0
    lo = int(np.searchsorted(t, t[chain[0]]))
    hi = int(np.searchsorted(t, t[chain[-1]], "right"))
    span_count = hi - lo
    purity = len(chain) / max(span_count, 1)
    # Chance of this chain in random traffic of the same local density (module docstring).
    span = float(t[chain[-1]] - t[chain[0]]) or 1.0
    density = span_count / span
    floor = max(JITTER_FLOOR_NS, JITTER_FLOOR_REL * med)
    # Each attempt after the second was predicted from the gaps before it: the chance that
    # random traffic puts a point that close to the prediction is 1 - exp(-2 * density * error).
    # Multiple testing: a chain this long could have started at any of `starts` attempts.
    starts = len(t) - len(chain) + 1
    chance = float(starts * min(SECOND_CANDIDATES, starts))
    errors = []
    for k in range(1, len(gaps)):
        predicted = float(np.median(gaps[:k]))
        err = max(abs(float(gaps[k]) - predicted), floor)
        errors.append(err / predicted)
        chance *= 1.0 - math.exp(-2.0 * density * err)
    typical_error = float(np.median(errors)) if errors else 0.0
    confidence = round(max(0.0, 1.0 - chance) * purity, 3)
    return Series(
        list(chain), round(med), purity, regularity, confidence, chance, typical_error
    )


def _accept(t: npt.NDArray[np.int64], s: Series) -> bool:
    if len(s.indices) < MIN_ATTEMPTS or s.interval_ns < MIN_INTERVAL_NS:
        return False
    gaps = np.diff(t[s.indices])
    if np.any(np.abs(gaps - s.interval_ns) > _tol(s.interval_ns)):
        return False
    return (
        s.purity >= MIN_PURITY and s.chance <= MAX_CHANCE and s.typical_error <= MAX_TYPICAL_ERROR
    )


def _follow(t: npt.NDArray[np.int64], used: npt.NDArray[np.bool_], i: int, j: int) -> list[int]:
    chain = [i, j]
    gaps = [float(t[j] - t[i])]
    p = gaps[0]
    while True:
        expected = t[chain[-1]] + p
        tol = _tol(p)
        lo = int(np.searchsorted(t, expected - tol, "left"))
        hi = int(np.searchsorted(t, expected + tol, "right"))
        best, best_d = -1, 0.0
        for k in range(max(lo, chain[-1] + 1), hi):
            if used[k]:
                continue
            d = abs(float(t[k]) - expected)
            if best < 0 or d < best_d:
                best, best_d = k, d
        if best < 0:
            return chain
        gaps.append(float(t[best] - t[chain[-1]]))
        chain.append(best)
        p = float(np.median(gaps))


def _consecutive_runs(t: npt.NDArray[np.int64]) -> list[list[int]]:
    """Maximal runs of consecutive attempts whose gaps stay within tolerance of the first gap."""
    gaps = np.diff(t).astype(np.float64)
    runs: list[list[int]] = []
    i = 0
    n = len(t)
    while i < n - 1:
        ref = gaps[i]
        if ref < MIN_INTERVAL_NS:
            i += 1
            continue
        ok = np.abs(gaps[i:] - ref) <= _tol(ref)
        stop = int(np.argmin(ok)) if not ok.all() else len(ok)
        runs.append(list(range(i, i + stop + 1)))
        i += max(stop, 1)
    return [r for r in runs if len(r) >= MIN_ATTEMPTS]


def find_series(times: npt.NDArray[np.int64]) -> list[Series]:
    """Regular poll series in one group's sorted attempt times (see module docstring)."""
    t = np.asarray(times, dtype=np.int64)
    n = len(t)
    if n < MIN_ATTEMPTS:
        return []
    out: list[Series] = []
    if n > MAX_CHAIN_GROUP:
        for run in _consecutive_runs(t):
            s = _score(t, run)
            if _accept(t, s):
                out.append(s)
        return out
    used = np.zeros(n, dtype=bool)
    for i in range(n - MIN_ATTEMPTS + 1):
        if used[i]:
            continue
        best: Series | None = None
        seconds = 0
        for j in range(i + 1, n):
            if seconds >= SECOND_CANDIDATES:
                break
            if used[j] or t[j] - t[i] < MIN_INTERVAL_NS:
                continue
            seconds += 1
            chain = _follow(t, used, i, j)
            if len(chain) < MIN_ATTEMPTS:
                continue
            s = _score(t, chain)
            if _accept(t, s) and (
                best is None
                or (len(s.indices), s.confidence) > (len(best.indices), best.confidence)
            ):
                best = s
        if best is not None:
            used[best.indices] = True
            out.append(best)
    return out
