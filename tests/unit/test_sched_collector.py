"""The sched collector: record layout, and every thread's rows tiling its time exactly."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tracer import schema
from tracer.collector import sched as sc

ROOT = Path(__file__).resolve().parents[2]
MS = 1_000_000


def _c_struct_fields(name: str) -> list[str]:
    text = re.sub(r"/\*.*?\*/", "", (ROOT / "bpf" / "sched.h").read_text(), flags=re.S)
    body = re.search(r"struct " + name + r" \{(.*?)\};", text, re.S)
    assert body, name
    return [m.group(1) for m in re.finditer(r"\b(\w+)(?:\[[^\]]*\])?;", body.group(1))]


def test_dtypes_mirror_sched_h() -> None:
    for cname, dt in (("sched_interval", sc.INTERVAL), ("sched_wake", sc.WAKE),
                      ("sched_bio", sc.BIO), ("sched_sync", sc.SYNC)):
        assert dt.itemsize == sc.C_SIZES[cname], cname
        assert list(dt.names) == _c_struct_fields(cname), cname
        # the collector reads every record's type at offset 16 before it knows the record
        assert dt.fields["type"][1] == 16, cname
    raw = (ROOT / "bpf" / "sched.h").read_text()
    for cname, size in sc.C_SIZES.items():
        assert re.search(rf"struct {cname} \{{.*?\}};  /\* {size} \*/", raw, re.S), cname


def test_thread_entry_mirrors_sched_bpf_c() -> None:
    """The collector reads the BPF thread entries raw (mmapped array, hash values): the numpy
    layout must be the C struct's, field for field, and the slot count the C constant."""
    text = re.sub(r"/\*.*?\*/", "", (ROOT / "bpf" / "sched.bpf.c").read_text(), flags=re.S)
    body = re.search(r"struct sched_thread \{(.*?)\};", text, re.S)
    assert body
    fields = [m.group(1) for m in re.finditer(r"\b(\w+)(?:\[[^\]]*\])?;", body.group(1))]
    assert list(sc.THREAD.names) == fields
    assert sc.THREAD.itemsize == 88 and sc.THREAD.itemsize % 8 == 0
    assert re.search(rf"#define SCHED_SLOTS {sc.SLOTS}\b", text)


def _iv(*rows: tuple[int, int, int, int, int, int, list[int]]) -> np.ndarray:
    """rows of (start, end, tid, pid, state, flags, ns[5] or ns[6]: steal 0 when left out)."""
    a = np.zeros(len(rows), dtype=sc.INTERVAL)
    for i, (s, e, tid, pid, st, fl, ns) in enumerate(rows):
        a[i]["start_ns"], a[i]["end_ns"], a[i]["tid"], a[i]["pid"] = s, e, tid, pid
        a[i]["state"], a[i]["flags"], a[i]["nfold"] = st, fl, 1
        a[i]["ns"] = list(ns) + [0] * (sc.ST_N - len(ns))
        a[i]["type"] = sc.EV_SCHED_INTERVAL
    return a


def _tiles(t: pa.Table, tid: int) -> list[dict]:  # type: ignore[type-arg]
    rows = sorted((r for r in t.to_pylist() if r["tid"] == tid), key=lambda r: r["start_ns"])
    for r in rows:
        assert sum(r[f"{s}_ns"] for s in sc.STATES) == r["end_ns"] - r["start_ns"], r
    for a, b in itertools.pairwise(rows):
        assert a["end_ns"] == b["start_ns"], (a, b)  # no gap, no overlap
    return rows


def test_before_first_event_the_proc_state_fills_from_the_start() -> None:
    at = {10: sc.ThreadAtStart(pid=10, state="S", read_ns=100 * MS)}
    c = sc.SchedCollector(start_ns=50 * MS, at_start=at)
    # first event at 200 ms (after the /proc read): asleep since the start
    out = c.feed({sc.EV_SCHED_INTERVAL: [_iv((200 * MS, 205 * MS, 10, 10, 0, 0,
                                              [5 * MS, 0, 0, 0, 0]))]})
    out2 = c.finish([], 300 * MS)
    t = pa.concat_tables([out["sched"], out2.get("sched", schema.SCHED.empty_table())])
    rows = _tiles(t, 10)
    assert rows[0]["origin"] == "proc" and rows[0]["state"] == "sleep"
    assert rows[0]["start_ns"] == 50 * MS and rows[0]["sleep_ns"] == 150 * MS


def test_first_event_before_the_proc_read_is_unknown_not_a_guess() -> None:
    at = {10: sc.ThreadAtStart(pid=10, state="S", read_ns=300 * MS)}
    c = sc.SchedCollector(start_ns=50 * MS, at_start=at)
    out = c.feed({sc.EV_SCHED_INTERVAL: [_iv((200 * MS, 205 * MS, 10, 10, 0, 0,
                                              [5 * MS, 0, 0, 0, 0]))]})
    rows = _tiles(out["sched"], 10)
    assert rows[0]["origin"] == "unknown" and rows[0]["other_ns"] == 150 * MS


def test_holes_are_other_and_tgid_less_rows_wait_for_their_tgid() -> None:
    c = sc.SchedCollector(start_ns=0)
    a = _iv((10 * MS, 12 * MS, 7, 0, 1, 0, [0, 2 * MS, 0, 0, 0]),  # runqueue, tgid unknown
            (12 * MS, 20 * MS, 7, 0, 0, 0, [8 * MS, 0, 0, 0, 0]))
    out = c.feed({sc.EV_SCHED_INTERVAL: [a]})
    assert "sched" not in out  # held: no tgid yet
    b = _iv((25 * MS, 30 * MS, 7, 5, 3, sc.F_DIED, [0, 0, 0, 5 * MS, 0]))  # hole 20..25
    out = c.feed({sc.EV_SCHED_INTERVAL: [b]})
    rows = _tiles(out["sched"], 7)
    assert [r["pid"] for r in rows] == [5, 5, 5, 5]
    assert [r["origin"] for r in rows] == ["bpf", "bpf", "lost", "bpf"]
    assert rows[2]["other_ns"] == 5 * MS and rows[-1]["exited"]
    assert c.stats["lost_holes"] == 1


def test_open_intervals_close_at_the_freeze() -> None:
    c = sc.SchedCollector(start_ns=0)
    c.feed({sc.EV_SCHED_INTERVAL: [_iv((0, 10 * MS, 3, 3, 3, 0, [0, 0, 0, 10 * MS, 0]))]})
    o = sc.OpenThread(tid=3, tgid=3, since=14 * MS, acc_start=10 * MS,
                      acc=[1 * MS, 2 * MS, 0, 0, 0, 1 * MS], state=0, nfold=2)
    out = c.finish([o], 20 * MS)
    rows = _tiles(out["sched"], 3)
    assert [(r["state"], r["origin"]) for r in rows] == [("mixed", "open"), ("cpu", "open")]
    assert rows[-2]["steal_ns"] == 1 * MS  # the folded accumulator's steal is kept
    assert rows[-1]["end_ns"] == 20 * MS and rows[-1]["cpu_ns"] == 6 * MS


def test_a_record_that_does_not_sum_is_repaired_and_counted() -> None:
    c = sc.SchedCollector(start_ns=0)
    out = c.feed({sc.EV_SCHED_INTERVAL: [_iv((0, 10 * MS, 3, 3, sc.ST_N, sc.F_MIXED,
                                              [4 * MS, 4 * MS, 4 * MS, 0, 0]))]})
    r = _tiles(out["sched"], 3)[0]
    assert c.stats["repaired_sum"] == 1
    assert r["cpu_ns"] + r["runqueue_ns"] + r["io_ns"] == 10 * MS


def test_threads_without_any_event_keep_their_proc_state() -> None:
    at = {4: sc.ThreadAtStart(pid=4, state="D", read_ns=1)}
    out = sc.SchedCollector(start_ns=0, at_start=at).finish([], 9 * MS)
    assert out["sched"].to_pylist()[0]["io_ns"] == 9 * MS


def test_wakers_are_classified() -> None:
    w = np.zeros(4, dtype=sc.WAKE)
    w["type"] = sc.EV_SCHED_WAKE
    w["ts_ns"] = [5, 6, 7, 8]
    w["tid"] = w["pid"] = 9
    w["kind"] = [1, 2, 3, 4]
    w["waker_pid"] = [11, 0, 0, 0]
    w["softirq"] = [0, 0, 4, 0]  # NET_RX + 1
    w["irq"] = [-1, -1, -1, 36]
    w["idle_state"] = 3
    w["waker_comm"] = b"replier"
    c = sc.SchedCollector(start_ns=0, irqs={36: "virtio1-req.0"})
    t = c.feed({sc.EV_SCHED_WAKE: [w]})["wakeup"].to_pylist()
    assert [r["waker"] for r in t] == ["process", "timer", "network", "disk"]
    assert t[0]["waker_pid"] == 11 and t[0]["waker_comm"] == "replier"
    assert t[1]["waker_pid"] is None and t[3]["irq_name"] == "virtio1-req.0"


def test_irq_names_parse_proc_interrupts(tmp_path: Path) -> None:
    p = tmp_path / "interrupts"
    p.write_text("           CPU0       CPU1\n"
                 " 36:          0      95468 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n"
                 " 38:          0      16221 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n"
                 "NMI:          0          0   Non-maskable interrupts\n")
    names = sc.irq_names(p)
    assert names == {36: "virtio1-req.0", 38: "virtio2-input.0"}
    assert sc.classify_irq(names[36]) == "disk" and sc.classify_irq(names[38]) == "network"
    assert sc.classify_irq("ACPI:Ged") == "unknown"


def test_a_1_1_trace_without_sched_tables_reads_with_empty_ones(tmp_path: Path) -> None:
    schema.write_meta(tmp_path, {"schema_version": "1.1", "tracer_version": "t", "start_ns": 0})
    tr = schema.load(tmp_path)
    assert schema.SCHEMA_VERSION == "1.4"
    for name in ("sched", "wakeup", "blockio"):
        assert tr.table(name).num_rows == 0 and tr.table(name).schema == schema.TABLES[name]


def test_record_help_documents_sched() -> None:
    from click.testing import CliRunner

    from tracer.cli import cli

    out = CliRunner().invoke(cli, ["record", "--help"]).output
    assert "--sched / --no-sched" in out and "record -o t --no-sched" in out
    assert "[default: sched]" in out


def test_sched_is_on_by_default_and_no_sched_turns_it_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN record's options WHEN none, --sched (the old opt-in, now a no-op) or --no-sched
    THEN the recorder is asked for the sched concern, asked for it, not asked for it."""
    from click.testing import CliRunner

    from tracer.cli import cli
    from tracer.collector import start

    seen: list[bool] = []

    def fake_record(opts: start.RecordOptions) -> start.RecordSummary:
        seen.append(opts.sched)
        return start.RecordSummary(output=opts.output, duration_s=0.0, rows={}, lost_events=0,
                                   attach_s=0.0, stop_reason="test", command_exit=None,
                                   unavailable={})

    monkeypatch.setattr(start, "record", fake_record)
    for extra in ([], ["--sched"], ["--no-sched"]):
        r = CliRunner().invoke(cli, ["record", "-o", str(tmp_path / "t"), *extra])
        assert r.exit_code == 0, r.output
    assert seen == [True, True, False]
    assert start.RecordOptions(output=tmp_path).sched is True
