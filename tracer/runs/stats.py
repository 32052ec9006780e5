"""Statistics of two samples of runs: per-side quantiles and the B - A shift with its interval.

The interval is the Hodges-Lehmann / Mann-Whitney one (docs/runs.md, "Why not a bootstrap"):
the mn pairwise differences b_j - a_i sorted, and the interval between the k-th smallest and the
k-th largest, k chosen from the exact distribution of the Mann-Whitney U statistic so that the
interval covers the true shift with probability >= 95 % whatever the (continuous) distribution
of run times. It needs no random numbers, and it is exact at the sample sizes people record
(five boots per version); a bootstrap of the median at n = 5 resamples among five values and
gives intervals that are too narrow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: two-sided level of the interval
CONFIDENCE = 0.95
#: up to this m*n the U distribution is counted exactly; above it the normal approximation
#: (with m*n > 2500 both sides have >= 50 runs, where it is accurate to well under 0.1 %)
EXACT_MAX_MN = 2500


@dataclass(frozen=True)
class Side:
    """One side's sample summary (ns)."""

    n: int
    median_ns: int | None
    p10_ns: int | None
    p90_ns: int | None


@dataclass(frozen=True)
class Shift:
    """B - A: difference of medians, the Hodges-Lehmann shift, and the interval for the shift."""

    diff_ns: int | None
    shift_ns: int | None
    ci_ns: tuple[int, int] | None
    #: the interval's achieved confidence (>= CONFIDENCE: U is discrete), None without one
    confidence: float | None
    significant: bool
    #: why there is no interval (too few runs), else None
    why_no_interval: str | None


def side(values: list[int]) -> Side:
    """n, median, 10th and 90th percentile (linear interpolation) of one side."""
    if not values:
        return Side(0, None, None, None)
    x = np.asarray(values, dtype=np.float64)
    p10, med, p90 = np.percentile(x, [10, 50, 90])
    return Side(len(values), round(float(med)), round(float(p10)), round(float(p90)))


@lru_cache(maxsize=256)
def _u_cdf(m: int, n: int) -> tuple[float, ...]:
    """P(U <= u) for u = 0..m*n under H0 (no shift), counted exactly.

    The number of arrangements with U = u obeys c(m, n, u) = c(m-1, n, u-n) + c(m, n-1, u)
    (is the largest of the m+n values an A or a B?); one row per m, vectors over u."""
    # rows[j] = counts for (i, j) with the current i; start at i = 0: U = 0 in one way
    rows = [np.zeros(1, dtype=np.float64) + 1 for _ in range(n + 1)]
    for i in range(1, m + 1):
        new = [np.zeros(i * j + 1) for j in range(n + 1)]
        new[0][0] = 1.0
        for j in range(1, n + 1):
            c = np.zeros(i * j + 1)
            prev_i = rows[j]  # (i-1, j): the largest value is an A, which beats all j B's
            c[j : j + len(prev_i)] += prev_i
            prev_j = new[j - 1]  # (i, j-1): the largest value is a B
            c[: len(prev_j)] += prev_j
            new[j] = c
        rows = new
    counts = rows[n]
    return tuple(np.cumsum(counts) / counts.sum())


def _k(m: int, n: int, alpha: float) -> tuple[int, float] | None:
    """The largest k >= 1 with P(U <= k-1) <= alpha/2, and the achieved confidence; None when
    even the widest interval (the min and max difference) is below the level."""
    if m * n <= EXACT_MAX_MN:
        cdf = _u_cdf(m, n)
        k = 0
        while k < len(cdf) and cdf[k] <= alpha / 2:
            k += 1
        if k == 0:
            return None
        return k, float(1 - 2 * cdf[k - 1])
    mu = m * n / 2
    sigma = math.sqrt(m * n * (m + n + 1) / 12)
    z = _z(1 - alpha / 2)
    k = math.floor(mu - z * sigma - 0.5) + 1  # continuity-corrected lower quantile
    return (k, 1 - alpha) if k >= 1 else None


def _z(p: float) -> float:
    """Standard normal quantile (bisection on erf: no scipy for one number)."""
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def shift(a: list[int], b: list[int], confidence: float = CONFIDENCE) -> Shift:
    """Difference of medians (B - A) and the distribution-free interval for the shift."""
    sa, sb = side(a), side(b)
    diff = None if sa.median_ns is None or sb.median_ns is None else sb.median_ns - sa.median_ns
    if not a or not b:
        return Shift(diff, None, None, None, False, "a side has no value")
    d = np.sort(np.subtract.outer(np.asarray(b, np.float64), np.asarray(a, np.float64)).ravel())
    hl = round(float(np.median(d)))
    if len(a) == 1 and len(b) == 1:
        return Shift(diff, hl, None, None, False, "one run per side: no interval can be given")
    kc = _k(len(a), len(b), 1 - confidence)
    if kc is None:
        return Shift(
            diff, hl, None, None, False,
            f"{len(a)} and {len(b)} runs are too few for a {confidence:.0%} interval",
        )
    k, achieved = kc
    lo, hi = round(float(d[k - 1])), round(float(d[len(d) - k]))
    return Shift(diff, hl, (lo, hi), round(achieved, 4), lo > 0 or hi < 0, None)
