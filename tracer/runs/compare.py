"""Many runs of A against many runs of B: every metric's distribution per side and the B - A
difference with its 95 % interval (docs/runs.md). Negative differences mean B is faster."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypedDict

from tracer import units
from tracer.analyzer.model import Analysis
from tracer.runs import stats
from tracer.runs.metrics import fill_zero, metric_names, run_metrics

METHOD = (
    "difference of medians (B - A); 95 % interval for the shift: Hodges-Lehmann / Mann-Whitney "
    "(exact U distribution up to 2500 pairs), distribution-free, no random numbers"
)
#: the seed's claim is about these phases: they lead every output
LEAD_PHASES = (
    "phase:containerd start -> first API readiness check",
    "phase:API server start -> ready",
    "phase:scheduler start latency (k3s exec -> :10259 listen)",
    "phase:controller-manager start latency (k3s exec -> :10257 listen)",
)


class SideStats(TypedDict):
    n: int
    median_ns: int | None
    p10_ns: int | None
    p90_ns: int | None
    #: each run's value, in the side's run order (None: the run does not have this metric)
    values_ns: list[int | None]


class MetricJson(TypedDict):
    name: str
    a: SideStats
    b: SideStats
    diff_ns: int | None
    diff_ci_ns: list[int] | None
    significant: bool
    #: Hodges-Lehmann estimate of the shift (median of all b - a differences)
    shift_ns: int | None
    #: the interval's achieved confidence (the U statistic is discrete: >= 0.95)
    confidence: float | None
    #: why there is no interval, when there is none
    note: str | None


class SideJson(TypedDict):
    name: str
    n: int
    runs: list[str]
    k3s_versions: list[str]


class RunsComparison(TypedDict):
    a: SideJson
    b: SideJson
    method: str
    metrics: list[MetricJson]
    notes: list[str]


def _side(name: str, runs: Sequence[tuple[str, Analysis]]) -> SideJson:
    versions = sorted({str(a.trace.get("k3s_version")) for _, a in runs
                       if a.trace and a.trace.get("k3s_version")})
    return SideJson(name=name, n=len(runs), runs=[n for n, _ in runs], k3s_versions=versions)


def _values(name: str, runs: list[dict[str, int]]) -> list[int | None]:
    zero = fill_zero(name)
    out: list[int | None] = []
    for r in runs:
        v = r.get(name)
        # a path kind is 0 only for a run that has a path (its end was reached)
        if v is None and zero and (not name.startswith("path:") or "total" in r):
            v = 0
        out.append(v)
    return out


def _stats(vals: list[int | None]) -> SideStats:
    present = [v for v in vals if v is not None]
    s = stats.side(present)
    return SideStats(n=s.n, median_ns=s.median_ns, p10_ns=s.p10_ns, p90_ns=s.p90_ns,
                     values_ns=vals)


def compare_runs(
    a: Sequence[tuple[str, Analysis]],
    b: Sequence[tuple[str, Analysis]],
    *,
    name_a: str = "A",
    name_b: str = "B",
    top_waits: int = 10,
) -> RunsComparison:
    """Compare two samples of runs, each (run name, analysis)."""
    ma = [run_metrics(x) for _, x in a]
    mb = [run_metrics(x) for _, x in b]
    phase_order = [str(p.get("name")) for _, x in [*a, *b] for p in x.phases]
    names = metric_names([*ma, *mb], list(dict.fromkeys(phase_order)))
    lead = [n for n in LEAD_PHASES if n in names]
    names = ["total", *lead, *[n for n in names if n not in lead and n != "total"]] \
        if "total" in names else [*lead, *[n for n in names if n not in lead]]
    metrics: list[MetricJson] = []
    for name in names:
        va, vb = _values(name, ma), _values(name, mb)
        pa_ = [v for v in va if v is not None]
        pb_ = [v for v in vb if v is not None]
        sh = stats.shift(pa_, pb_)
        metrics.append(MetricJson(
            name=name, a=_stats(va), b=_stats(vb), diff_ns=sh.diff_ns,
            diff_ci_ns=list(sh.ci_ns) if sh.ci_ns is not None else None,
            significant=sh.significant, shift_ns=sh.shift_ns, confidence=sh.confidence,
            note=sh.why_no_interval,
        ))
    metrics = _keep_top_waits(metrics, top_waits)
    notes = []
    if len(a) == 1 and len(b) == 1:
        notes.append("one run per side: no interval can be given (give several runs per side)")
    for side, runs, mm in (("A", a, ma), ("B", b, mb)):
        missing = [n for (n, _), m in zip(runs, mm) if "total" not in m]
        if missing:
            notes.append(f"{side}: end milestone not reached in {', '.join(missing)}")
    return RunsComparison(a=_side(name_a, a), b=_side(name_b, b), method=METHOD,
                          metrics=metrics, notes=notes)


def _keep_top_waits(metrics: list[MetricJson], top: int) -> list[MetricJson]:
    """The `top` endpoints waited on longest (by the larger side's median), wait and lag both."""
    def biggest(m: MetricJson) -> int:
        return max(m["a"]["median_ns"] or 0, m["b"]["median_ns"] or 0)

    waits = sorted((m for m in metrics if m["name"].startswith("wait:")), key=lambda m:
                   (-biggest(m), m["name"]))
    keep = {m["name"].split(":", 1)[1] for m in waits[:top]}
    return [m for m in metrics if m["name"].split(":", 1)[0] not in ("wait", "lag")
            or m["name"].split(":", 1)[1] in keep]


def _ns(v: int | None) -> str:
    return "–" if v is None else units.fmt_ns(v)


def _signed(v: int | None) -> str:
    return "–" if v is None else ("+" if v > 0 else "") + units.fmt_ns(v)


def metric_rows(c: RunsComparison) -> list[list[str]]:
    """One row per metric, as text cells (the terminal table and the page's table)."""
    rows = []
    for m in c["metrics"]:
        ci = m["diff_ci_ns"]
        rows.append([
            m["name"],
            str(m["a"]["n"]), _ns(m["a"]["median_ns"]),
            f"{_ns(m['a']['p10_ns'])} – {_ns(m['a']['p90_ns'])}",
            str(m["b"]["n"]), _ns(m["b"]["median_ns"]),
            f"{_ns(m['b']['p10_ns'])} – {_ns(m['b']['p90_ns'])}",
            _signed(m["diff_ns"]),
            "–" if ci is None else f"[{_signed(ci[0])}, {_signed(ci[1])}]",
            "yes" if m["significant"] else ("no" if ci is not None else "–"),
        ])
    return rows


HEADER = ["metric", "nA", "A median", "A p10 – p90", "nB", "B median", "B p10 – p90",
          "Δ median", "95% interval", "significant"]


def render_text(c: RunsComparison) -> str:
    """The comparison as an aligned table for a terminal."""
    out = []
    for side in ("a", "b"):
        s = c[side]
        v = f"  (k3s {', '.join(s['k3s_versions'])})" if s["k3s_versions"] else ""
        out.append(f"{side.upper()} = {s['name']}: {s['n']} run{'s' if s['n'] != 1 else ''}{v}")
    out += [f"Δ = {c['method']}", ""]
    rows = [HEADER, *metric_rows(c)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for r in rows:
        out.append("  " + "  ".join(x.ljust(widths[i]) if i == 0 else x.rjust(widths[i])
                                    for i, x in enumerate(r)))
    out.append("")
    why = dict.fromkeys(m["note"] for m in c["metrics"] if m["note"])  # once each, in order
    out += [f"note: {n}" for n in [*c["notes"], *why] if n]
    return "\n".join(out).rstrip() + "\n"


def render_json(c: RunsComparison) -> str:
    return json.dumps(c, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
