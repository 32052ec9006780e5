"""The numbers of one run that many-run comparisons and the dataset are made of.

``run_metrics(analysis)`` -> {metric name: ns}. Names (docs/runs.md):

* ``total``: the critical path, start to end milestone (absent when the end was not reached);
* ``phase:NAME``: each profile phase that happened (an absent phase is absent, never 0);
* ``path:KIND``: critical-path time per segment kind (0 when the path had none of that kind);
* ``wait:ENDPOINT`` / ``lag:ENDPOINT``: time waited on an endpoint by listener and poll waits
  inside the analysis window, and the polling lag of those waits (0 when nothing waited on it).

* ``component:NAME``: with stacks (the analysis' `stacks` section), the on-CPU time of each
  stack component inside the analysis window, estimated from its on-CPU samples: samples x
  (1 s / sample_hz), so its resolution is one sampling period (20.4 ms at the default 49 Hz);
  0 when a run had none of that component's samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tracer.analyzer.model import Analysis

#: path kinds in the order the analyzer documents them (others after, sorted)
PATH_KINDS = (
    "run", "wait:listener", "wait:poll-lag", "wait:poll", "wait:child", "wait:module",
    "wait:wakeup", "wait:unknown",
)
#: waits on these kinds name an endpoint
ENDPOINT_WAITS = ("listener", "poll")


def run_metrics(a: Analysis) -> dict[str, int]:
    """{metric: ns} of one analysis (metrics a run does not have are absent, see above)."""
    out: dict[str, int] = {}
    if a.end_reached and a.total_ns is not None:
        out["total"] = int(a.total_ns)
    for p in a.phases:
        d = p.get("duration_ns")
        if isinstance(d, int) and p.get("name"):
            out[f"phase:{p['name']}"] = d
    if a.end_reached:
        for s in a.critical_path:
            k = f"path:{s['kind']}"
            out[k] = out.get(k, 0) + int(s["duration_ns"])
    st = a.stacks
    if st and st.get("sample_hz"):
        period_ns = 1_000_000_000 / int(st["sample_hz"])
        for c in st.get("by_component") or []:
            out[f"component:{c['component']}"] = round(int(c["samples"]) * period_ns)
    for w in a.waits:
        if w.get("kind") not in ENDPOINT_WAITS or not w.get("endpoint") or not w.get("in_window"):
            continue
        ep = str(w["endpoint"])
        out[f"wait:{ep}"] = out.get(f"wait:{ep}", 0) + int(w.get("duration_ns") or 0)
        out[f"lag:{ep}"] = out.get(f"lag:{ep}", 0) + int(w.get("lag_ns") or 0)
    return out


def _rank(name: str) -> tuple[int, str]:
    kind = name.split(":", 1)[0]
    order = {"total": 0, "phase": 1, "path": 2, "wait": 3, "lag": 4, "component": 5}
    if kind == "path":
        k = name.split(":", 1)[1]
        i = PATH_KINDS.index(k) if k in PATH_KINDS else len(PATH_KINDS)
        return (2, f"{i:02d}{k}")
    return (order.get(kind, 9), "")


def metric_names(runs: Iterable[dict[str, int]], phase_order: Sequence[str] = ()) -> list[str]:
    """Every metric of any run: total, phases (in the profile's order), path kinds, waits,
    components."""
    seen: dict[str, None] = {}
    for r in runs:
        seen.update((k, None) for k in r)
    names = list(seen)
    po = {f"phase:{n}": i for i, n in enumerate(phase_order)}
    first = {n: i for i, n in enumerate(names)}  # first appearance breaks ties (phases, waits)
    return sorted(names, key=lambda n: (*_rank(n)[:1], po.get(n, len(po)), _rank(n)[1],
                                        first[n]))


def fill_zero(name: str) -> bool:
    """A run without this metric had zero of it (path kinds, waits), rather than none."""
    return name.split(":", 1)[0] in ("path", "wait", "lag", "component")
