"""Traces made from a real recording with a planted delay: the startup made longer by a known
amount, as if its delay parameter had been longer.

tests/data/etcd-start.trace is a real recording (real BPF, real etcd, real etcdctl) of a
startup whose first step is `sleep 1.5`, after which etcd starts and etcdctl's retries reach it.
Every timestamp at or after a cut inside that sleep moves later by `delay_ns`: what a
`sleep 1.5+delay` would have recorded (nothing after the sleep depends on its length). The
analysis' total then grows by exactly `delay_ns`: a planted difference with a known value, on
event sequences the kernel produced. The many-runs tests and bench/dataset.py use it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from tracer import schema

ROOT = Path(__file__).resolve().parents[1]
ETCD_TRACE = ROOT / "tests" / "data" / "etcd-start.trace"
#: columns that are moments on the trace clock (durations such as sched's cpu_ns are not)
MOMENT_COLUMNS = ("ts_ns", "enter_ns", "ret_ns", "outcome_ns", "start_ns", "end_ns",
                  "received_ns", "idle_start_ns")


def sleep_cut(src: Path = ETCD_TRACE) -> int:
    """The middle of the recorded `sleep`'s life: every later moment belongs to after it."""
    t = schema.load(src).tables["process"]
    rows = t.filter(pc.equal(t["comm"], "sleep")).to_pylist()
    times = sorted(int(r["ts_ns"]) for r in rows)
    if len(times) < 2:
        raise ValueError(f"{src}: no sleep with a start and an end")
    return (times[0] + times[-1]) // 2


def shifted_trace(dst: Path, delay_ns: int, *, src: Path = ETCD_TRACE, cut_ns: int | None = None,
                  meta: dict[str, object] | None = None) -> Path:
    """Copy the trace at src to dst with every moment >= cut_ns moved by delay_ns."""
    cut = sleep_cut(src) if cut_ns is None else cut_ns
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix != schema.TABLE_SUFFIX:
            continue
        table = ipc.open_stream(pa.OSFile(str(f))).read_all()
        for name in MOMENT_COLUMNS:
            if name in table.column_names:
                col = table[name]
                moved = pc.if_else(pc.greater_equal(col, cut), pc.add(col, delay_ns), col)
                table = table.set_column(table.schema.get_field_index(name), name,
                                         moved.cast(col.type))
        with pa.OSFile(str(dst / f.name), "wb") as sink, ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
    m = json.loads((src / schema.META_FILE).read_text())
    m["end_ns"] = int(m["end_ns"]) + delay_ns
    m.update(meta or {})
    (dst / schema.META_FILE).write_text(json.dumps(m, indent=1, sort_keys=True))
    return dst


def copy_trace(dst: Path, src: Path = ETCD_TRACE) -> Path:
    """An unchanged copy (a run with no planted delay)."""
    shutil.copytree(src, dst)
    return dst
