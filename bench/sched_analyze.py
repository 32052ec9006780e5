"""analyze time of one trace with and without its scheduler tables (the same trace otherwise):
the cost the sched passes add (issue 15: <= 5 s more for 60 s of a busy 2-core machine).

    sudo .venv/bin/k3sprof record --sched -o /var/tmp/busy.trace -- bench/workload_busy.sh
    .venv/bin/python -m bench.sched_analyze /var/tmp/busy.trace [ROUNDS]
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tracer import schema
from tracer.analyzer import Options, load_and_analyze

SCHED_TABLES = ("sched", "wakeup", "blockio")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    src = Path(args[0])
    tr = schema.load(src)
    rounds = int(args[1]) if len(args) > 1 else 5
    # the same trace without its scheduler tables: a copy of the directory, as a recorder
    # without the sched concern would have written it
    plain = Path(tempfile.mkdtemp(prefix="sched-analyze-")) / "plain"
    shutil.copytree(src, plain, ignore=shutil.ignore_patterns(
        *(name + schema.TABLE_SUFFIX for name in SCHED_TABLES)))
    print({k: tr.table(k).num_rows for k in ("process", *SCHED_TABLES)})
    for name, d in (("with sched", src), ("without", plain)):
        xs = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            a = load_and_analyze(d, Options())  # load + analyze, as every caller does
            xs.append(time.perf_counter() - t0)
        kinds = sorted({s["kind"] for s in a.critical_path})
        print(f"{name}: median {statistics.median(xs):.2f} s (min {min(xs):.2f}, "
              f"max {max(xs):.2f}, n={rounds}); path segments {len(a.critical_path)}, "
              f"kinds {kinds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
