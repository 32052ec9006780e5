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

import itertools
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MIN_ATTEMPTS = 3
REL_TOL = 0.10
ABS_TOL_NS = 2_000_000
MIN_INTERVAL_NS = 5_000_000  # faster than 5 ms is a burst, not a poll loop
MIN_PURITY = 0.6
MAX_CHANCE = 0.01
MAX_TYPICAL_ERROR = 0.02
JITTER_FLOOR_NS = 200_000
JITTER_FLOOR_REL = 0.002
SECOND_CANDIDATES = 3  # how far to look for the second attempt past interleaved connects
MAX_CHAIN_GROUP = 20_000
LARGE_GROUP = 200  # above this, a loop needs PREFILTER_STEPS attempts to be considered
PREFILTER_STEPS = 5


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


def _median(sorted_vals: list[float]) -> float:
    n = len(sorted_vals)
    m = n // 2
    return sorted_vals[m] if n % 2 else (sorted_vals[m - 1] + sorted_vals[m]) / 2


def _score(t: list[int], chain: list[int]) -> Series:
    gaps = [float(t[b] - t[a]) for a, b in itertools.pairwise(chain)]
    med = _median(sorted(gaps))
    mad = _median(sorted(abs(g - med) for g in gaps))
    regularity = max(0.0, 1.0 - (mad / med) / REL_TOL) if med > 0 else 0.0
    span_count = bisect_right(t, t[chain[-1]]) - bisect_left(t, t[chain[0]])
    purity = len(chain) / max(span_count, 1)
    # Chance of this chain in random traffic of the same local density (module docstring).
    span = float(t[chain[-1]] - t[chain[0]]) or 1.0
    density = span_count / span
    floor = max(JITTER_FLOOR_NS, JITTER_FLOOR_REL * med)
    # Multiple testing: a chain this long could have started at any of `starts` attempts.
    starts = len(t) - len(chain) + 1
    chance = float(starts * min(SECOND_CANDIDATES, starts))
    # Each attempt after the second was predicted from the gaps before it: the chance that
    # random traffic puts a point that close to the prediction is 1 - exp(-2 * density * error).
    errors = []
    seen = [gaps[0]]
    for g in gaps[1:]:
        predicted = _median(seen)
        err = max(abs(g - predicted), floor)
        errors.append(err / predicted)
        chance *= 1.0 - math.exp(-2.0 * density * err)
        insort(seen, g)
    typical_error = _median(sorted(errors)) if errors else 0.0
    confidence = round(max(0.0, 1.0 - chance) * purity, 3)
    return Series(list(chain), round(med), purity, regularity, confidence, chance, typical_error)


def _accept(t: list[int], s: Series) -> bool:
    if len(s.indices) < MIN_ATTEMPTS or s.interval_ns < MIN_INTERVAL_NS:
        return False
    tol = _tol(s.interval_ns)
    c = s.indices
    if any(abs(t[b] - t[a] - s.interval_ns) > tol for a, b in itertools.pairwise(c)):
        return False
    return (
        s.purity >= MIN_PURITY and s.chance <= MAX_CHANCE and s.typical_error <= MAX_TYPICAL_ERROR
    )


def _follow(t: list[int], used: bytearray, i: int, j: int) -> list[int]:
    chain = [i, j]
    gaps = [float(t[j] - t[i])]
    p = gaps[0]
    while True:
        expected = t[chain[-1]] + p
        tol = _tol(p)
        lo = max(bisect_left(t, expected - tol), chain[-1] + 1)
        hi = bisect_right(t, expected + tol)
        best, best_d = -1, 0.0
        for k in range(lo, hi):
            if used[k]:
                continue
            d = abs(t[k] - expected)
            if best < 0 or d < best_d:
                best, best_d = k, d
        if best < 0:
            return chain
        insort(gaps, float(t[best] - t[chain[-1]]))
        chain.append(best)
        p = _median(gaps)
        if len(chain) >= 5:  # hopeless once interleaved traffic dominates the span
            span_count = best - chain[0] + 1
            if len(chain) / span_count < MIN_PURITY / 2:
                return chain


def _consecutive_runs(t: list[int]) -> list[list[int]]:
    """Maximal runs of consecutive attempts whose gaps stay within tolerance of the first gap."""
    runs: list[list[int]] = []
    i = 0
    n = len(t)
    while i < n - 1:
        ref = t[i + 1] - t[i]
        if ref < MIN_INTERVAL_NS:
            i += 1
            continue
        tol = _tol(ref)
        k = i + 1
        while k < n - 1 and abs(t[k + 1] - t[k] - ref) <= tol:
            k += 1
        if k - i + 1 >= MIN_ATTEMPTS:
            runs.append(list(range(i, k + 1)))
        i = max(k, i + 1)
    return runs


def _prefilter(t: list[int]) -> dict[int, list[int]]:
    """(first, second) attempt pairs whose cadence predicts the next PREFILTER_STEPS - 2
    attempts too (vectorized): in a large group only these are worth following."""
    arr = np.asarray(t, dtype=np.int64)
    n = len(arr)
    out: dict[int, list[int]] = {}
    for d in range(1, SECOND_CANDIDATES + 1):
        i = np.arange(n - d)
        p = (arr[i + d] - arr[i]).astype(np.float64)
        ok = p >= MIN_INTERVAL_NS
        tol = np.maximum(REL_TOL * p, ABS_TOL_NS)
        for step in range(2, PREFILTER_STEPS):
            expected = arr[i] + step * p
            slack = tol * (1 + 0.5 * (step - 2))  # sliding pollers drift: allow it to add up
            pos = np.searchsorted(arr, expected - slack)
            hit = pos < n
            hit[hit] &= arr[pos[hit]] <= (expected + slack)[hit]
            ok &= hit
        # purity: a chain through these points cannot be pure if its span is crowded
        span_end = arr[i] + (PREFILTER_STEPS - 1) * p
        crowd = np.searchsorted(arr, span_end, "right") - i
        ok &= crowd <= PREFILTER_STEPS / MIN_PURITY
        for a in np.flatnonzero(ok).tolist():
            out.setdefault(a, []).append(a + d)
    return {k: sorted(v) for k, v in out.items()}


def find_series(times: npt.NDArray[np.int64] | list[int]) -> list[Series]:
    """Regular poll series in one group's sorted attempt times (see module docstring)."""
    t: list[int] = np.asarray(times, dtype=np.int64).tolist()
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
    used = bytearray(n)
    seconds_of = _prefilter(t) if n > LARGE_GROUP else None

    def best_from(i: int) -> Series | None:
        best: Series | None = None
        seconds = 0
        cands: Sequence[int] = seconds_of.get(i, []) if seconds_of is not None else range(i + 1, n)
        for j in cands:
            if seconds >= SECOND_CANDIDATES:
                break
            if used[j] or t[j] - t[i] < MIN_INTERVAL_NS:
                continue
            seconds += 1
            chain = _follow(t, used, i, j)
            if len(chain) < MIN_ATTEMPTS:
                continue
            if best is not None and len(chain) < len(best.indices):
                continue
            span_count = bisect_right(t, t[chain[-1]]) - bisect_left(t, t[chain[0]])
            if len(chain) / span_count < MIN_PURITY:
                continue
            s = _score(t, chain)
            if _accept(t, s) and (
                best is None
                or (len(s.indices), s.confidence) > (len(best.indices), best.confidence)
            ):
                best = s
        return best

    # In a large group only the prefiltered firsts can start a series (best_from returns None
    # for any other): walk those, not every attempt (a busy daemon's group holds thousands).
    firsts: list[int] = (
        sorted(seconds_of) if seconds_of is not None else list(range(n - MIN_ATTEMPTS + 1))
    )
    for fi, i in enumerate(firsts):
        if i > n - MIN_ATTEMPTS or used[i]:
            continue
        best = best_from(i)
        if best is None:
            continue
        # An unrelated connect just before a loop can pass for its first attempt and make the
        # chain skip the real first one (k3s's certificate fetches right before its /readyz
        # poller): a chain starting inside the first gap that is as long and purer wins.
        for k in firsts[fi + 1 : bisect_left(firsts, best.indices[1])]:
            alt = best_from(k) if not used[k] else None
            if alt is not None and (len(alt.indices), alt.purity, alt.confidence) > (
                len(best.indices),
                best.purity,
                best.confidence,
            ):
                best = alt
        for k in best.indices:
            used[k] = 1
        out.append(best)
    return out


def find_series_answered(
    times: npt.NDArray[np.int64] | list[int], answered: Sequence[int | None] | None
) -> list[Series]:
    """find_series, measuring the cadence also where the client decides to retry (issue 29).

    answered[k]: when the waiter got the answer to attempt k (the end of its wait for it, from
    scheduler data), None when it came at once or is unknown. A busy server answers late, and
    a poller then retries either a fixed interval after the ANSWER (its attempt starts are
    irregular, the gaps after each answer are not) or, on a fixed schedule, at once when the
    answer came after the next attempt was due (a catch-up), then on schedule again. So:
    series are found on the attempt starts and on the client's own time (each gap minus the
    wait for the previous answer), the longest kept; then each series is followed through its
    neighbours while each next attempt is either on its schedule (one interval per attempt
    since the last on-schedule one), one interval after the previous answer, or a catch-up
    right after a late answer; series of the same interval that meet are one. A slow answer
    is then part of the wait on the server, not a break in the series. Without answers this
    is exactly find_series."""
    t: list[int] = np.asarray(times, dtype=np.int64).tolist()
    base = find_series(t)
    n = len(t)
    if answered is None or n < MIN_ATTEMPTS or all(a is None for a in answered):
        return base
    ans = [
        a if a is not None and t[k] <= a <= (t[k + 1] if k + 1 < n else a) else None
        for k, a in enumerate(answered)
    ]
    own = [t[0]]  # the attempts on the client's own clock: answer waits taken out
    for k in range(1, n):
        got = ans[k - 1]
        own.append(own[-1] + (t[k] - (t[k - 1] if got is None else got)))
    virt = find_series(own)
    chosen: list[Series] = []
    for s in sorted(base + virt, key=lambda s: -len(s.indices)):  # stable: real first on ties
        lo, hi = s.indices[0], s.indices[-1]
        if all(hi < c.indices[0] or lo > c.indices[-1] for c in chosen):
            chosen.append(s)
    chosen.sort(key=lambda s: s.indices[0])
    out: list[Series] = []
    owner = {k: c for c in chosen for k in c.indices}
    for s in chosen:
        if out and s.indices[0] <= out[-1].indices[-1]:
            continue  # absorbed by the series before it
        out.append(_through_slow_answers(t, ans, s, owner))
    return out


def _through_slow_answers(t: list[int], ans: list[int | None], s: Series,
                          owner: dict[int, Series]) -> Series:
    """Series s followed backward and forward through late answers (find_series_answered)."""
    p = s.interval_ns
    tol = _tol(p)
    n = len(t)
    absorbed = [s]

    def step(anchor: int, b: int) -> str | None:
        """How attempt b continues a series whose last on-schedule attempt is `anchor`:
        "on" (its slot, one interval per attempt since the anchor, or one interval after the
        previous answer), "catch-up" (late for its slot because the client still waited for
        the previous answer then, and retried right after it), None (not this loop)."""
        slot = t[anchor] + (b - anchor) * p
        a = ans[b - 1]
        if abs(t[b] - slot) <= tol or (a is not None and abs(t[b] - a - p) <= tol):
            return "on"
        prev_end = a if a is not None else t[b - 1]
        if t[b] > slot + tol and prev_end > slot - tol and 0 <= t[b] - prev_end <= tol:
            return "catch-up"
        return None

    idx = list(s.indices)
    f = idx[0]  # backward: attempts before the first that lead up to it on the same cadence
    while f >= 1:
        for c in range(f - 1, max(-1, f - 5), -1):
            if owner.get(c) is not None:
                c = -1
                break
            if all(step(c, b) == "catch-up" for b in range(c + 1, f)) and step(c, f) == "on":
                break
        else:
            c = -1
        if c < 0:
            break
        idx.extend(range(c, f))
        f = c
    k = anchor = s.indices[-1]
    while k + 1 < n:
        b = k + 1
        how = step(anchor, b)
        other = owner.get(b)
        if other is not None and other is not s and other not in absorbed:
            if abs(other.interval_ns - p) > tol or how is None:
                break
            absorbed.append(other)  # the same loop, split by a slow answer: one series
            idx.extend(other.indices)
            k = anchor = other.indices[-1]
            continue
        if how is None:
            break
        idx.append(b)
        if how == "on":
            anchor = b
        k = b
    if len(idx) == len(s.indices):
        return s
    idx = sorted(set(idx))
    span = bisect_right(t, t[idx[-1]]) - bisect_left(t, t[idx[0]])
    return Series(idx, p, len(idx) / max(span, 1), min(x.regularity for x in absorbed),
                  max(x.confidence for x in absorbed), min(x.chance for x in absorbed),
                  max(x.typical_error for x in absorbed))
