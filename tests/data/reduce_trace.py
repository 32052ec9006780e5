"""Cut a recorded trace down to the recorded command's process tree (rows of other processes on
the machine left out), for a small committed test trace. The rows kept are the recorder's own
bytes, unchanged.

    .venv/bin/python tests/data/reduce_trace.py RECORDED.trace OUT.trace

How tests/data/etcd-start.trace was made (2026-12-01, this repo's recorder, Debian etcd 3.4):
`tests.integration.recording.etcdctl_before_etcd` recorded with `k3sprof record`, then this.
Stacks are kept only where a kept sample uses them, binaries and symbols only where a kept
mapping names them (tests/data/gok3s-start.trace: tests/data/record_gok3s_golden.py).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.integration.recording import descendants
from tracer import schema


def main(src: Path, out: Path) -> int:
    trace = schema.load(src)
    pids = descendants(trace, int(trace.meta["command_pid"]))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = {}
    kept: dict[str, pa.Table] = {}
    for name, table in trace.tables.items():
        if "pid" in table.column_names and name != "log":
            table = table.filter(
                pc.fill_null(pc.is_in(table["pid"], pa.array(sorted(pids), pa.int32())), False)
            )
        kept[name] = table
    # stacks of the kept samples only; binaries and symbols of the kept mappings only
    if "stacks" in kept and "samples" in kept:
        ids = pc.unique(pc.drop_null(kept["samples"]["stack_id"]))
        kept["stacks"] = kept["stacks"].filter(pc.is_in(kept["stacks"]["stack_id"], ids))
    if "mappings" in kept:
        used = pc.unique(pc.drop_null(kept["mappings"]["binary"]))
        for name in ("binaries", "symbols"):
            if name in kept:
                kept[name] = kept[name].filter(pc.is_in(kept[name]["binary"], used))
    for name, table in kept.items():
        w = schema.StreamWriter(out / (name + schema.TABLE_SUFFIX), schema.TABLES[name])
        w.write(table)
        w.close()
        rows[name] = table.num_rows
    schema.write_meta(out, {**trace.meta, "rows": rows})
    print(f"{out}: {rows}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), Path(sys.argv[2])))
