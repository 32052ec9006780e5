"""The what-if changes a user can ask for, parsed from their command-line form.

``parse(text) -> Change``: ``poll:ENDPOINT=INTERVAL``, ``faster:SELECTOR=FACTOR``,
``remove:SELECTOR``, ``parallel:A,B``. A malformed change raises UsageError (one line).
Whether an endpoint or selector exists in a trace is checked by the engine, which knows the trace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from tracer._errors import UsageError

KINDS = ("poll", "faster", "remove", "parallel")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s)\s*$")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True)
class Change:
    """One change: its kind and operands, and the text it was written as."""

    kind: str  # poll | faster | remove | parallel
    text: str
    endpoint: str | None = None  # poll
    interval_ns: int | None = None  # poll
    selector: str | None = None  # faster, remove; parallel: A (the waiter)
    factor: float | None = None  # faster
    other: str | None = None  # parallel: B (what A no longer waits for)


def parse_duration(text: str) -> int:
    """'40ms', '1s', '500us', '2.5s' -> ns (> 0)."""
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"bad interval {text!r}: use a number with a unit, e.g. 40ms or 1s")
    ns = round(float(m.group(1)) * _UNIT_NS[m.group(2)])
    if ns <= 0:
        raise UsageError(f"bad interval {text!r}: it must be more than 0")
    return ns


def parse(text: str) -> Change:
    """One change from its command-line form (UsageError when malformed)."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS:
        raise UsageError(
            f"bad change {text!r}: expected poll:ENDPOINT=INTERVAL, faster:SELECTOR=FACTOR, "
            "remove:SELECTOR or parallel:A,B")
    if kind == "poll":
        ep, eq, iv = rest.rpartition("=")
        if not eq or not ep:
            raise UsageError(f"bad change {text!r}: expected poll:ENDPOINT=INTERVAL (e.g. "
                             "poll:127.0.0.1:6443=40ms)")
        return Change("poll", text, endpoint=ep, interval_ns=parse_duration(iv))
    if kind == "faster":
        sel, eq, fac = rest.rpartition("=")
        if not eq or not sel:
            raise UsageError(f"bad change {text!r}: expected faster:SELECTOR=FACTOR (e.g. "
                             "faster:iptables=2)")
        try:
            factor = float(fac)
        except ValueError:
            raise UsageError(f"bad factor {fac!r} in {text!r}: expected a number > 0") from None
        if not math.isfinite(factor) or factor <= 0:
            raise UsageError(f"bad factor {fac!r} in {text!r}: it must be a finite number > 0 "
                             "(2 = twice as fast; use remove: for work that is gone)")
        return Change("faster", text, selector=sel, factor=factor)
    if kind == "remove":
        if not rest:
            raise UsageError(f"bad change {text!r}: expected remove:SELECTOR")
        return Change("remove", text, selector=rest)
    a, comma, b = rest.partition(",")
    if not comma or not a or not b:
        raise UsageError(f"bad change {text!r}: expected parallel:A,B (A no longer waits for B)")
    return Change("parallel", text, selector=a, other=b)
