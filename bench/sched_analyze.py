"""analyze time of one trace with and without its scheduler tables (the same trace otherwise):
the cost the sched passes add (issue 15: <= 5 s more for 60 s of a busy 2-core machine).

    sudo .venv/bin/k3sprof record --sched -o /var/tmp/busy.trace -- bench/workload_busy.sh
    .venv/bin/python -m bench.sched_analyze /var/tmp/busy.trace [ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import time

from tracer import schema
from tracer.analyzer import analyze

SCHED_TABLES = ("sched", "wakeup", "blockio")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    tr = schema.load(args[0])
    rounds = int(args[1]) if len(args) > 1 else 5
    plain = schema.Trace(path=tr.path, meta=tr.meta,
                         tables={k: v for k, v in tr.tables.items() if k not in SCHED_TABLES})
    print({k: tr.table(k).num_rows for k in ("process", *SCHED_TABLES)})
    for name, t in (("with sched", tr), ("without", plain)):
        xs = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            a = analyze(t)
            xs.append(time.perf_counter() - t0)
        kinds = sorted({s["kind"] for s in a.critical_path})
        print(f"{name}: median {statistics.median(xs):.2f} s (min {min(xs):.2f}, "
              f"max {max(xs):.2f}, n={rounds}); path segments {len(a.critical_path)}, "
              f"kinds {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
