"""`k3sprof whatif` output: JSON (keys of docs/whatif.md) and text."""

from __future__ import annotations

from typing import TypedDict

from tracer.whatif.engine import Prediction


class PhaseJson(TypedDict):
    name: str
    recorded_ns: int
    predicted_ns: int


class SegmentJson(TypedDict):
    start_ns: int
    end_ns: int
    duration_ns: int
    kind: str
    label: str
    key: str | None
    pid: int | None
    comm: str | None


class ChangeJson(TypedDict):
    change: str
    kind: str
    matched: list[str]
    gain_ns: int
    not_modelled: list[str]
    notes: list[str]


class WhatIfJson(TypedDict):
    whatif_version: str
    start_ns: int
    recorded_end_ns: int
    predicted_end_ns: int
    recorded_total_ns: int
    predicted_total_ns: int
    gain_ns: int
    phases: list[PhaseJson]
    critical_path: list[SegmentJson]
    changes: list[ChangeJson]


WHATIF_VERSION = "1"


def to_json(p: Prediction) -> WhatIfJson:
    """The prediction as `whatif --json` prints it."""
    return WhatIfJson(
        whatif_version=WHATIF_VERSION,
        start_ns=p.start_ns,
        recorded_end_ns=p.recorded_end_ns,
        predicted_end_ns=p.predicted_end_ns,
        recorded_total_ns=p.recorded_total_ns,
        predicted_total_ns=p.predicted_total_ns,
        gain_ns=p.recorded_total_ns - p.predicted_total_ns,
        phases=[PhaseJson(name=x.name, recorded_ns=x.recorded_ns, predicted_ns=x.predicted_ns)
                for x in p.phases],
        critical_path=[SegmentJson(start_ns=s.start_ns, end_ns=s.end_ns,
                                   duration_ns=s.end_ns - s.start_ns, kind=s.kind, label=s.label,
                                   key=s.key, pid=s.pid, comm=s.comm) for s in p.critical_path],
        changes=[ChangeJson(change=c.change, kind=c.kind, matched=c.matched, gain_ns=c.gain_ns,
                            not_modelled=c.not_modelled, notes=c.notes) for c in p.changes],
    )


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.1f} ms"


def render_text(p: Prediction) -> str:
    """The prediction for a terminal."""
    gain = p.recorded_total_ns - p.predicted_total_ns
    out = [f"recorded  {_ms(p.recorded_total_ns):>12}",
           f"predicted {_ms(p.predicted_total_ns):>12}   ({'-' if gain >= 0 else '+'}"
           f"{_ms(abs(gain))}, {100 * gain / p.recorded_total_ns if p.recorded_total_ns else 0:.1f}"
           " % faster)" if gain >= 0 else
           f"predicted {_ms(p.predicted_total_ns):>12}   (+{_ms(-gain)}: slower)", ""]
    out.append("Changes")
    for c in p.changes:
        out.append(f"  {c.change}: alone {_ms(c.gain_ns)} gain; touches "
                   f"{', '.join(c.matched[:6])}{' ...' if len(c.matched) > 6 else ''}")
        out += [f"    not modelled: {x}" for x in c.not_modelled]
        out += [f"    {x}" for x in c.notes]
    if p.phases:
        out += ["", "Phases                                              recorded    predicted"]
        out += [f"  {x.name[:48]:<48} {_ms(x.recorded_ns):>12} {_ms(x.predicted_ns):>12}"
                for x in p.phases]
    out += ["", "Predicted critical path"]
    t0 = p.start_ns
    for s in p.critical_path:
        d = s.end_ns - s.start_ns
        pct = 100 * d / p.predicted_total_ns if p.predicted_total_ns else 0.0
        out.append(f"  {(s.start_ns - t0) / 1e6:>+10,.1f} {_ms(d):>12} {pct:5.1f}%  "
                   f"{s.kind:<14} {s.label}")
    return "\n".join(out) + "\n"
