"""The stacks collector's rows from raw records (no BPF): each event's samples row carries
the (tid, ts_ns, kind) of the row the assembler builds from the same record."""

from __future__ import annotations

import re
import socket
import struct
from pathlib import Path

import numpy as np

from tracer.collector import decode as d
from tracer.collector import sched as sc
from tracer.collector.assemble import Assembler
from tracer.collector.stacks import StackCollector
from tracer.collector.stacktargets import comm_key, running_with_comm

ROOT = Path(__file__).resolve().parents[2]


def hdr(t: int, ts: int, pid: int, tid: int) -> bytes:
    return struct.pack("<QQIIII16s", ts, 7, t, pid, tid, 0, b"k3s")


def fork(ts: int, pid: int, tid: int, child: int, flags: int, stack: int) -> bytes:
    return hdr(d.EV_FORK, ts, pid, tid) + struct.pack("<QIi", flags, child, stack)


def connect(ts: int, enter: int, pid: int, tid: int, stack: int) -> bytes:
    sa = struct.pack("<H", socket.AF_UNIX) + b"/run/x.sock\0"
    return hdr(d.EV_CONNECT, ts, pid, tid) + struct.pack(
        "<QQqiI112s", enter, 0, -2, 3, len(sa), sa) + struct.pack(
        "<QiiHHHH16s", 0, 0, 0, 0, 0, 0, 0, b"") + struct.pack("<iI", stack, 0)


def sample(ts: int, pid: int, tid: int, stack: int, cpu: int) -> bytes:
    return struct.pack("<QIIIiII", ts, pid, tid, d.EV_STACK_SAMPLE, stack, cpu, 0)


def sync(enter: int, exit_: int, pid: int, tid: int, stack: int) -> bytes:
    return struct.pack("<QQIIIIqqiI", enter, exit_, sc.EV_SCHED_SYNC, tid, pid, 1, 0, -1,
                       stack, 0)


def typed(*records: bytes) -> dict[int, list[np.ndarray]]:
    by_size: dict[int, list[bytes]] = {}
    for r in records:
        by_size.setdefault(len(r), []).append(r)
    types = d.dtypes()
    types.update(sc.dtypes())
    return d.split(by_size, types)


def collector() -> StackCollector:
    # a closed fd: no map to read (every lookup fails and is counted)
    return StackCollector(stack_fd=999_999, value_size=127 * 8, sample_hz=49, profile="k3s",
                          proc=Path("/nonexistent"))


def test_event_samples_match_their_event_rows_exactly() -> None:
    recs = typed(
        fork(100, 10, 11, 50, 0, 3),                # a process: the row's tid is the child
        fork(110, 10, 12, 51, 0x00010000, 4),       # a thread
        fork(120, 99, 99, 52, 0, d.STACK_NOT_TAKEN),  # not a target: no samples row
        connect(200, 190, 10, 12, 5),               # the socket row's ts_ns is the entry
        sample(300, 10, 11, -14, 1),                # EFAULT
        sample(310, 10, 11, 3, 0),
        sync(400, 450, 10, 13, -17),                # EEXIST
    )
    sc_ = collector()
    out = sc_.feed(recs)
    rows = out["samples"].to_pylist()
    events = Assembler().feed({t: v for t, v in recs.items() if t < 32})
    proc = {(r["tid"], r["ts_ns"], r["kind"]) for r in events["process"].to_pylist()}
    sock = {(r["tid"], r["ts_ns"], r["kind"]) for r in events["socket"].to_pylist()}
    got = {(r["tid"], r["ts_ns"], r["kind"]): r for r in rows}
    # every event samples row is the key of an event row
    assert {(50, 100, "fork"), (51, 110, "thread")} <= proc
    assert (50, 100, "fork") in got and (51, 110, "thread") in got
    assert got[(50, 100, "fork")]["pid"] == 10  # symbolised through the parent
    assert (12, 190, "connect") in sock and (12, 190, "connect") in got
    assert (13, 400, "fsync") in got  # blockio's ts_ns is the call's entry
    assert not [r for r in rows if r["pid"] == 99]
    assert [r["kind"] for r in rows] == ["fork", "thread", "connect", "cpu", "cpu", "fsync"]
    # errors: null stack id, the errno kept and counted by name
    cpu = [r for r in rows if r["kind"] == "cpu"]
    assert cpu[0]["stack_id"] is None and cpu[0]["stack_error"] == -14 and cpu[0]["cpu"] == 1
    assert cpu[1]["stack_id"] == 3 and cpu[1]["stack_error"] is None
    assert sc_.errors == {"EFAULT": 1, "EEXIST": 1}
    assert sc_.counts == {"fork": 1, "thread": 1, "connect": 1, "cpu": 2, "fsync": 1}
    # each referenced id is looked up once (here the lookups fail: counted, not hidden)
    assert sc_.lookup_failed == 3
    sc_.feed(typed(sample(500, 10, 11, 3, 0)))
    assert sc_.lookup_failed == 3
    # processes whose maps could not be read are counted
    assert sc_.unmapped_pids == {10}


def test_stack_sample_mirrors_events_h() -> None:
    text = re.sub(r"/\*.*?\*/", "", (ROOT / "bpf" / "events.h").read_text(), flags=re.S)
    body = re.search(r"struct stack_sample \{(.*?)\};", text, re.S)
    assert body
    fields = [m.group(1) for m in re.finditer(r"\b(\w+);", body.group(1))]
    assert list(d.STACK_SAMPLE.names) == fields
    assert d.STACK_SAMPLE.fields["type"][1] == 16  # read before the record is known


def test_comm_keys_are_the_kernels_15_bytes() -> None:
    assert comm_key("kube-controller-manager") == b"kube-controller\0"
    assert comm_key("k3s") == b"k3s" + b"\0" * 13


def test_running_with_comm(tmp_path: Path) -> None:
    for pid, comm in ((1, "systemd"), (20, "k3s-server"), (30, "kube-controller")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    assert running_with_comm(["k3s-server", "kube-controller-manager"], tmp_path) == [20, 30]
    assert running_with_comm([], tmp_path) == []
