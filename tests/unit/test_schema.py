"""The trace file format: round trip, crash safety (torn tails), bad input messages."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from tests.builders import ms, table
from tracer import conditions, schema
from tracer._errors import TraceError, UsageError


def write_trace(d: Path, batches: int = 3) -> None:
    d.mkdir()
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "t",
                          "start_ns": 0, "lost_events": 4})
    w = schema.StreamWriter(d / "process.arrows", schema.PROCESS)
    for i in range(batches):
        w.write(table("process", [dict(ts_ns=ms(i), kind="fork", pid=10 + i, ppid=1,
                                       comm="sh")]))
    w.close()


def test_round_trip_and_missing_tables_read_empty(tmp_path: Path) -> None:
    write_trace(tmp_path / "t")
    t = schema.load(tmp_path / "t")
    assert t.table("process")["pid"].to_pylist() == [10, 11, 12]
    assert t.table("socket").num_rows == 0 and t.table("socket").schema == schema.SOCKET
    assert t.lost_events == 4 and t.truncated == {}


def test_torn_tail_keeps_every_complete_batch(tmp_path: Path) -> None:
    # GIVEN a stream whose writer died mid-batch (file cut short, no end-of-stream marker)
    write_trace(tmp_path / "t")
    p = tmp_path / "t" / "process.arrows"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 8 - 60])  # drop the EOS marker and part of batch 3
    # THEN the complete batches are read and the torn tail is reported
    t = schema.load(tmp_path / "t")
    assert t.table("process")["pid"].to_pylist() == [10, 11]
    assert "torn tail after 2 complete batches" in t.truncated["process"]


def test_meta_is_replaced_atomically(tmp_path: Path) -> None:
    write_trace(tmp_path / "t")
    assert not (tmp_path / "t" / "meta.json.tmp").exists()
    assert (tmp_path / "t" / "meta.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no such trace"),
    (lambda d: d.write_text("x"), "not a trace directory"),
    (lambda d: d.mkdir(), "not a k3sprof trace (no meta.json)"),
    (lambda d: (d.mkdir(), (d / "meta.json").write_text("{nope")), "corrupt metadata"),
    (lambda d: (d.mkdir(), (d / "meta.json").write_text('{"a": 1}')), "not k3sprof trace metadata"),
    (lambda d: (d.mkdir(), (d / "meta.json").write_text(json.dumps(
        {"schema_version": "99.0", "tracer_version": "x", "start_ns": 0}))), "schema 99.0"),
])
def test_bad_traces_give_one_clear_error(tmp_path: Path, setup, message: str) -> None:
    d = tmp_path / "t"
    setup(d)
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        schema.load(d)


def test_garbage_table_file_is_reported_not_crashed(tmp_path: Path) -> None:
    write_trace(tmp_path / "t")
    (tmp_path / "t" / "socket.arrows").write_bytes(b"\xff" * 100)
    t = schema.load(tmp_path / "t")
    assert t.table("socket").num_rows == 0 and "socket" in t.truncated


@pytest.mark.parametrize("text", ["exec", "boot:k3s", "listen:abc", "listen:70000",
                                  "connect-ok:", "log:(unclosed"])
def test_bad_conditions_name_the_syntax(text: str) -> None:
    with pytest.raises(UsageError, match="condition"):
        conditions.parse(text)


def test_conditions_find_the_first_matching_moment() -> None:
    tables = {
        "process": table("process", [
            dict(ts_ns=5, kind="exec", pid=1, comm="k3s-server",
                 filename="/var/lib/rancher/k3s/data/a/bin/k3s-server"),
            dict(ts_ns=9, kind="exit", pid=1, comm="k3s-server"),
        ]),
        "socket": table("socket", [
            dict(ts_ns=3, kind="listen", pid=1, port=6443, ret=-98, endpoint="0.0.0.0:6443"),
            dict(ts_ns=4, kind="listen", pid=1, port=6443, ret=0, endpoint="0.0.0.0:6443"),
            dict(ts_ns=6, kind="connect", pid=2, port=6443, outcome="refused", outcome_ns=6),
            dict(ts_ns=7, kind="connect", pid=2, port=6443, outcome="ok", outcome_ns=8),
            dict(ts_ns=8, kind="listen", pid=1, endpoint="unix:/run/k.sock", ret=0),
        ]),
    }
    when = {c: conditions.when(conditions.parse(c), tables) for c in
            ["exec:k3s-server", "exit:k3s-server", "listen:6443", "connect-ok:6443",
             "listen:/run/k.sock", "exec:containerd", "listen:10250"]}
    assert when == {"exec:k3s-server": 5, "exit:k3s-server": 9, "listen:6443": 4,
                    "connect-ok:6443": 8, "listen:/run/k.sock": 8, "exec:containerd": None,
                    "listen:10250": None}
    # no process table at all, or an empty one: not reached, not an error
    exec_x = conditions.parse("exec:x")
    assert conditions.when(exec_x, {}) is None
    assert conditions.when(exec_x, {"process": schema.PROCESS.empty_table()}) is None


def test_a_schema_1_0_trace_reads_with_the_new_columns_null(tmp_path: Path) -> None:
    # GIVEN a trace written before process.tag existed (schema 1.0)
    d = tmp_path / "t"
    d.mkdir()
    schema.write_meta(d, {"schema_version": "1.0", "tracer_version": "0.0.9", "start_ns": 0})
    old = pa.schema([f for f in schema.PROCESS if f.name != "tag"])
    w = schema.StreamWriter(d / "process.arrows", old)
    w.write(table("process", [dict(ts_ns=1, kind="exec", pid=5, comm="modprobe",
                                   filename="/sbin/modprobe")]).drop_columns(["tag"]))
    w.close()
    # THEN it loads, conformed to the current schema
    t = schema.load(d).table("process")
    assert t.schema == schema.PROCESS
    assert t.to_pylist()[0]["tag"] is None and t.to_pylist()[0]["comm"] == "modprobe"
