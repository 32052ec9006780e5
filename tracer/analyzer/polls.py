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
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

MIN_ATTEMPTS = 3
REL_TOL = 0.10
ABS_TOL_NS = 2_000_000
MIN_INTERVAL_NS = 5_000_000  # faster than 5 ms is a burst, not a poll loop
MIN_PURITY = 0.6
MAX_CHANCE = 0.01
MAX_TYPICAL_ERROR = 0.02
#: _score's grid reading: every attempt but one within this share of the interval of a line
GRID_ERROR = 0.005
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
    #: median relative error of each attempt against the cadence so far, or against the
    #: chain's own grid when that is smaller (_score)
    typical_error: float


def _tol(p: float) -> float:
    return max(REL_TOL * p, ABS_TOL_NS)


def _median(sorted_vals: list[float]) -> float:
    n = len(sorted_vals)
    m = n // 2
    return sorted_vals[m] if n % 2 else (sorted_vals[m - 1] + sorted_vals[m]) / 2


def _line(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, float]:
    """The least-squares line y = icept + slope * x (np.polyfit(x, y, 1)'s answer in closed
    form: polyfit's general solver was a quarter of a 1M-event analysis's poll search)."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float(dx @ (y - ym)) / float(dx @ dx)
    return slope, float(ym - slope * xm)


def _score(t: list[int], chain: list[int], imputed: frozenset[int] = frozenset()) -> Series:
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
    # An imputed attempt (a catch-up moved to its slot, _on_schedule) is no evidence of its
    # own time: it counts as anywhere within the tolerance, and not in the typical error.
    errors = []
    seen = [gaps[0]]
    for b, g in zip(chain[2:], gaps[1:], strict=True):
        predicted = _median(seen)
        err = max(abs(g - predicted), floor)
        if b in imputed:
            err = _tol(predicted)
        else:
            errors.append(err / predicted)
        chance *= 1.0 - math.exp(-2.0 * density * err)
        insort(seen, g)
    typical_error = _median(sorted(errors)) if errors else 0.0
    if len(chain) >= 4:
        # a loop on a fixed schedule (a Go ticker) with ONE late attempt (a stall of the
        # client) has two odd gaps, the late one and the short one after it, so half its
        # gap errors can be large; yet every attempt but that one is on its grid. So the
        # other reading: against the chain's own least-squares grid (t = a + k * p), the
        # largest relative error of all attempts but the worst one. Only one attempt may be
        # off: random traffic rarely puts all its other points on a line
        k = np.arange(len(chain), dtype=np.float64)
        tc = np.asarray([t[i] for i in chain], np.float64) - t[chain[0]]
        slope, icept = _line(k, tc)
        rest = np.asarray([i not in imputed for i in chain], bool)  # imputed: not evidence
        resid = np.abs(tc - (icept + slope * k))
        resid[~rest] = -1.0
        rest[int(np.argmax(resid))] = False  # the grid of all but the worst attempt
        if int(rest.sum()) >= 3:
            slope, icept = _line(k[rest], tc[rest])
        # more stalls: a stall only DELAYS an attempt, so beyond the first, attempts above
        # the grid (late) may be set aside too, up to a third of the chain in all
        late_out = 1
        while late_out < len(chain) // 3 and int(rest.sum()) > 3 and slope > 0:
            signed = np.where(rest, tc - (icept + slope * k), -np.inf)
            worst = int(np.argmax(signed))
            if signed[worst] <= GRID_ERROR * slope:
                break
            rest[worst] = False
            late_out += 1
            slope, icept = _line(k[rest], tc[rest])
        if int(rest.sum()) >= 3 and slope > 0:
            off = float(np.max(np.abs(tc[rest] - (icept + slope * k[rest])))) / slope
            if off <= GRID_ERROR:
                typical_error = min(typical_error, off)
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
    # the float copy the searches below compare in (their keys are float): made once, not by
    # each searchsorted call converting the whole group again
    arrf = arr.astype(np.float64)
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
            pos = np.searchsorted(arrf, expected - slack)
            hit = pos < n
            hit[hit] &= arr[pos[hit]] <= (expected + slack)[hit]
            ok &= hit
        # purity: a chain through these points cannot be pure if its span is crowded
        span_end = arr[i] + (PREFILTER_STEPS - 1) * p
        crowd = np.searchsorted(arrf, span_end, "right") - i
        ok &= crowd <= PREFILTER_STEPS / MIN_PURITY
        for a in np.flatnonzero(ok).tolist():
            out.setdefault(a, []).append(a + d)
    return {k: sorted(v) for k, v in out.items()}


def find_series(
    times: npt.NDArray[np.int64] | list[int], imputed: frozenset[int] = frozenset()
) -> list[Series]:
    """Regular poll series in one group's sorted attempt times (see module docstring);
    imputed: positions whose time is a slot, not a measurement (_on_schedule)."""
    t: list[int] = np.asarray(times, dtype=np.int64).tolist()
    n = len(t)
    if n < MIN_ATTEMPTS:
        return []
    out: list[Series] = []
    if n > MAX_CHAIN_GROUP:
        for run in _consecutive_runs(t):
            s = _score(t, run, imputed)
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
            s = _score(t, chain, imputed)
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
    since the last on-schedule one), one interval after the previous answer, a catch-up
    right after a late answer, or (a ticker that drops missed ticks, Go's time.Ticker) the
    first tick of the same grid after a late answer: socket activation's first connect waits
    in the backlog while the daemon starts; series of the same interval that meet are one.
    A slow answer
    is then part of the wait on the server, not a break in the series. Last, each series is
    followed through attempts a stall made late (_with_late_attempts): without answers, that
    is all this adds to find_series."""
    t: list[int] = np.asarray(times, dtype=np.int64).tolist()
    base = find_series(t)
    n = len(t)
    if answered is None or n < MIN_ATTEMPTS or all(a is None for a in answered):
        return [_with_late_attempts(t, [None] * n, s, base) for s in base]
    ans = [
        a if a is not None and t[k] <= a <= (t[k + 1] if k + 1 < n else a) else None
        for k, a in enumerate(answered)
    ]
    own = [t[0]]  # the attempts on the client's own clock: answer waits taken out
    for k in range(1, n):
        got = ans[k - 1]
        own.append(own[-1] + (t[k] - (t[k - 1] if got is None else got)))
    virt = find_series(own)
    sched = _on_schedule(t, ans)
    if sched is not None:
        # a catch-up retries a slot that the loop's own previous attempt kept it from: that
        # attempt is in the series, and so is the next one (the loop goes on)
        moved = sched[1]
        virt += [
            s for s in find_series(sched[0], moved)
            if all(b - 1 in s.indices and (b + 1 in s.indices or b + 1 == n)
                   for b in moved.intersection(s.indices))
        ]
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
    return [_with_late_attempts(t, ans, s, out) for s in out]


def _on_schedule(t: list[int], ans: list[int | None]) -> tuple[list[int], frozenset[int]] | None:
    """The attempts on a fixed schedule's own time (find_series_answered): each catch-up (an
    attempt made right after an answer that came after its slot was due, the client
    retrying the slots it missed) moved to its slot; the positions moved. The interval: the
    median gap between the attempts that are not catch-ups, a gap over k catch-ups counting
    as k + 1 slots. None: no catch-up (the attempt starts are this view)."""
    n = len(t)
    late = [k for k in range(n - 1) if ans[k] is not None]
    gaps = sorted(float(b - a) for a, b in itertools.pairwise(t) if b - a >= MIN_INTERVAL_NS)
    if not late or not gaps:
        return None

    def catch_ups(p: float) -> dict[int, int]:  # catch-up position -> the late attempt
        tol = _tol(p)
        out: dict[int, int] = {}
        for a in late:
            got = ans[a]
            assert got is not None
            b = a + 1
            while b < n and t[a] + (b - a) * p <= got + tol and (b == a + 1 or ans[b - 1] is None) \
                    and 0 <= t[b] - (got if b == a + 1 else t[b - 1]) <= tol:
                out[b] = a
                b += 1
        return out

    first = catch_ups(_median(gaps))
    if not first:
        return None
    keep = [k for k in range(n) if k not in first]
    per_slot = sorted((t[b] - t[a]) / (b - a) for a, b in itertools.pairwise(keep))
    if not per_slot or _median(per_slot) < MIN_INTERVAL_NS:
        return None
    p = _median(per_slot)
    moved = catch_ups(p)
    if not moved:
        return None
    out = list(t)
    for b, a in moved.items():
        out[b] = t[a] + round((b - a) * p)
    if any(x >= y for x, y in itertools.pairwise(out)):
        return None
    return out, frozenset(moved)


def _late(t: list[int], ans: list[int | None], p: int, anchor: int, b: int) -> bool:
    """Attempt b of a series of interval p, whose last on-schedule attempt is `anchor`, came
    late by the client's own doing (a stall: it was runnable, or the host ran another guest,
    when its tick fired): after its slot by more than the tolerance but by less than half an
    interval, while the previous answer (or attempt) was well before that slot (so not a
    catch-up), or as late after one interval from the previous answer (a loop that sleeps
    after each answer); and the loop is back on its cadence right after (the next attempt on the
    grid, or one interval after b's answer), or b is the group's last attempt (the one that
    found the server ready ends the loop). A stall only delays: an attempt EARLY for its
    slot is never taken this way."""
    tol = _tol(p)
    n = len(t)
    slot = t[anchor] + (b - anchor) * p
    got = ans[b - 1]
    prev_end = got if got is not None else t[b - 1]
    on_grid_late = slot + tol < t[b] < slot + p / 2 and prev_end < slot - tol
    # a loop that sleeps one interval after each answer: late for its answer's interval
    after_answer_late = got is not None and got + p + tol < t[b] < got + p + p / 2
    if not (on_grid_late or after_answer_late):
        return False
    if b + 1 == n:
        return True
    nxt, answer = t[b + 1], ans[b]
    return abs(nxt - (slot + p)) <= tol or (answer is not None and abs(nxt - answer - p) <= tol)


def _with_late_attempts(t: list[int], ans: list[int | None], s: Series,
                        found: list[Series]) -> Series:
    """Series s followed forward, and backward, through attempts a stall made late (_late)
    and the on-schedule attempts beyond them, up to an attempt of another series. Backward,
    a late attempt is taken only with an on-schedule one before it (an unrelated connect
    just before a loop, such as k3s's certificate fetches before its /readyz poll, is not
    its first attempt)."""
    p = s.interval_ns
    tol = _tol(p)
    n = len(t)
    others = {k for o in found if o is not s for k in o.indices}
    idx = list(s.indices)
    anchor = idx[-1]
    b = anchor + 1
    while b < n and b not in others:
        if abs(t[b] - (t[anchor] + (b - anchor) * p)) <= tol:
            anchor = b
        elif not _late(t, ans, p, anchor, b):
            break
        idx.append(b)
        b += 1
    anchor = idx[0]
    b = anchor - 1
    while b >= 0 and b not in others:
        if abs(t[b] - (t[anchor] - (anchor - b) * p)) <= tol:
            idx.append(b)
            anchor = b
            b -= 1
            continue
        if b == 0 or b - 1 in others:
            break
        if b == anchor - 1 and _late(t, ans, p, b, anchor):
            # the series' first attempt was itself late after b (a stalled retry after b's
            # answer): b is the loop's when the attempt before b is on b's cadence
            got = ans[b - 1]
            if abs(t[b] - t[b - 1] - p) <= tol or (got is not None and abs(t[b] - got - p) <= tol):
                idx += [b, b - 1]
                anchor = b - 1
                b -= 2
                continue
        slot = t[anchor] - (anchor - b) * p
        got = ans[b - 1]
        prev_end = got if got is not None else t[b - 1]
        # the attempt before: on the grid one slot earlier, or whole slots earlier with its
        # answer after the tick before b's slot (a ticker that dropped the ticks it missed:
        # socket activation's backlogged first connect, then a stalled retry)
        m = round((slot - t[b - 1]) / p)
        if not (slot + tol < t[b] < slot + p / 2 and prev_end < slot - tol and m >= 1
                and abs(t[b - 1] - (slot - m * p)) <= tol
                and (m == 1 or (got is not None and got >= slot - p - tol))):
            break
        idx += [b, b - 1]
        anchor = b - 1
        b -= 2
    if len(idx) == len(s.indices):
        return s
    idx.sort()
    span = bisect_right(t, t[idx[-1]]) - bisect_left(t, t[idx[0]])
    return replace(s, indices=idx, purity=len(idx) / max(span, 1))


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
        return "on" if dropped(anchor, b) else None

    def dropped(anchor: int, b: int) -> bool:
        """A ticker that DROPS the ticks it missed (Go's time.Ticker): the client waited for
        the previous answer through one or more ticks, then retried at the first tick of the
        same grid after that answer (when the answer came just before that tick, the retry
        is a catch-up too)."""
        a = ans[b - 1]
        prev_end = a if a is not None else t[b - 1]
        m = round((t[b] - t[anchor]) / p)
        return m > b - anchor and abs(t[b] - (t[anchor] + m * p)) <= tol \
            and prev_end >= t[anchor] + (m - 1) * p - tol and 0 <= t[b] - prev_end <= p + tol

    idx = list(s.indices)
    f = idx[0]  # backward: attempts before the first that lead up to it on the same cadence
    while f >= 1:
        for c in range(f - 1, max(-1, f - 5), -1):
            if owner.get(c) is not None:
                c = -1
                break
            if all(step(c, b) == "catch-up" for b in range(c + 1, f)) \
                    and (step(c, f) == "on" or (f == c + 1 and dropped(c, f))):
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
        if how is None and _late(t, ans, p, anchor, b):
            how = "late"
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
