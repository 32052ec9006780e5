"""Durations, moments, shares and processes as every report writes them (HTML, compare, what-if,
many runs): the leaf that report tables, chart hovers and the runs comparison all format with."""

from __future__ import annotations


def fmt_ns(ns: int | None) -> str:
    """A duration for humans: 1.234 s, 12.3 ms, 456 µs."""
    if ns is None:
        return "–"
    a = abs(ns)
    sign = "-" if ns < 0 else ""
    if a >= 1_000_000_000:
        return f"{sign}{a / 1e9:.3f} s"
    if a >= 1_000_000:
        return f"{sign}{a / 1e6:.1f} ms"
    if a >= 1_000:
        return f"{sign}{a / 1e3:.0f} µs"
    return f"{sign}{a} ns"


def fmt_t(ts_ns: int | None, t0: int) -> str:
    """A moment as seconds since the recording started: +1.234567 s."""
    if ts_ns is None:
        return "–"
    return f"+{(ts_ns - t0) / 1e9:.6f} s"


def pct(part: int, total: int) -> str:
    """A share for humans: 41.2% ("–" of a total of nothing)."""
    return f"{100 * part / total:.1f}%" if total > 0 else "–"


def who(pid: int | None, comm: str) -> str:
    """A process for humans: k3s-server [100]."""
    if pid is None and not comm:
        return "–"
    return f"{comm} [{pid}]" if pid is not None else comm


__all__ = ["fmt_ns", "fmt_t", "pct", "who"]
