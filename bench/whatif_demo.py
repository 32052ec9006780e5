"""`whatif poll:` checked on the real etcd + containerd demo (issue 28's last check).

    sudo .venv/bin/python -m bench.whatif_demo [--runs 5] [--bases 5] [--base 250]
                                               [--variants 100,500]

The demo (tracer/demo: real etcd and containerd started by a supervisor that polls etcd's
/health and containerd's socket at a fixed cadence) is recorded `--bases` times at the base
interval; from each recording `whatif` predicts the end for each variant interval (both polls
changed, as `--poll-interval` changes both); then the demo is recorded `--runs` times at each
variant and its measured end is the median of those runs' analysed totals (the same pipeline
as the base, so the recorder's own cost is on both sides). The prediction is the median of the
per-recording predictions: the demo's own end varies by several hundred ms from run to run
(docs/whatif.md), so one recording's prediction is off by as much as that recording was from
the typical run; the median over several measures the model, as the measured side's median
does. It meets the goal when it is within 10 % (or 20 ms) of the measured median; the spread
of the single-recording predictions is kept beside it.

The per-request timeout of the /health poll is held at `--request-timeout` (80 ms) for every
setting: left at its default (0.8 x the interval) a shorter interval would also fail slower
answers, which is a second change `whatif poll:` does not describe.

etcd's election timeout is held at `--etcd-election-timeout` (50 ms; etcd's default 1000 ms):
a fresh single-member etcd campaigns after a random 0.1-1.0 election timeouts, drawn anew at
each start (its log says "fast-forwarding election ticks"), so at the default each rerun's
readiness moves by up to 900 ms, a draw no trace of another run can predict. At 50 ms the draw
is 5-50 ms, and reruns differ in little but what `whatif` changes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import log, summary

MS = 1_000_000


def _demo(out: Path, interval_ms: float, request_timeout_s: float,
          etcd_election_ms: int | None) -> Any:
    from tracer.demo.run import run_demo

    r = run_demo(out, lambda _line: None, poll_interval_s=interval_ms / 1000, go=False,
                 request_timeout_s=request_timeout_s, etcd_election_ms=etcd_election_ms)
    if r.analysis is None or not r.analysis.end_reached or r.analysis.total_ns is None:
        raise RuntimeError(f"demo at {interval_ms:g} ms did not reach its end ({out})")
    return r.analysis


def _polled(a: Any) -> list[str]:
    """The demo's two retry loops: refused until the listen (a listener wait), then answered
    not-ready (a poll wait): every endpoint a retry loop with a cadence waited on."""
    return sorted({str(w["endpoint"]) for w in a.waits
                   if w.get("kind") in ("poll", "listener") and w.get("endpoint")
                   and w.get("interval_ns")})


def measure(runs: int = 5, base_ms: float = 250.0, variants: tuple[float, ...] = (100.0, 500.0),
            request_timeout_s: float = 0.08, bases: int = 5,
            etcd_election_ms: int | None = 50) -> dict[str, Any]:
    """{base: {...}, variants: [{interval_ms, predicted_ms (the median of the per-recording
    predictions), predicted_each: summary, measured: summary, error_ms, allowed_ms}]}."""
    from tracer.whatif import predict

    with tempfile.TemporaryDirectory(prefix="k3sprof-whatif-demo-") as tmp:
        root = Path(tmp)
        recorded = []
        for i in range(bases):
            log(f"whatif_demo: recording the demo at {base_ms:g} ms, {i + 1}/{bases}")
            a = _demo(root / f"base-{i}", base_ms, request_timeout_s, etcd_election_ms)
            if not _polled(a):
                raise RuntimeError(f"base recording {i + 1} has no poll wait to change")
            recorded.append(a)
        totals_base = [a.total_ns / MS for a in recorded]
        out: dict[str, Any] = {
            "base": {"interval_ms": base_ms, "recorded_ms": statistics.median(totals_base),
                     "recorded": summary(totals_base), "bases": bases,
                     "endpoints": len(_polled(recorded[0]))},
            "request_timeout_s": request_timeout_s, "etcd_election_ms": etcd_election_ms,
            "runs": runs, "variants": [],
        }
        for v in variants:
            each = [predict(a, [f"poll:{ep}={v:g}ms" for ep in _polled(a)]).predicted_total_ns
                    / MS for a in recorded]
            predicted = statistics.median(each)
            totals = []
            for i in range(runs):
                log(f"whatif_demo: {v:g} ms, run {i + 1}/{runs}")
                a = _demo(root / f"v{v:g}-{i}", v, request_timeout_s, etcd_election_ms)
                totals.append(a.total_ns / MS)
            med = statistics.median(totals)
            out["variants"].append({
                "interval_ms": v, "predicted_ms": predicted, "predicted_each": summary(each),
                "measured": summary(totals),
                "error_ms": abs(predicted - med),
                "allowed_ms": max(0.10 * med, 20.0),
            })
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5, help="measured runs per variant")
    ap.add_argument("--bases", type=int, default=5, help="recordings at the base interval")
    ap.add_argument("--base", type=float, default=250.0, help="recorded interval, ms")
    ap.add_argument("--variants", default="100,500", help="predicted intervals, ms")
    ap.add_argument("--request-timeout", type=float, default=0.08, help="seconds")
    ap.add_argument("--etcd-election-timeout", type=int, default=50,
                    help="etcd's election timeout, ms (0: etcd's default, 1000)")
    a = ap.parse_args(argv)
    res = measure(a.runs, a.base, tuple(float(x) for x in a.variants.split(",")),
                  a.request_timeout, a.bases, a.etcd_election_timeout or None)
    json.dump(res, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
