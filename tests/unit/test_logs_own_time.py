"""A live log line's own timestamp vs the time it was received: which one places the row.

Lines are real ones (containerd 1.6 logrus, etcd 3.4 capnslog and zap, k3s klog); the rule is
tracer.context.logs.rows.own_time_ns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tracer import conditions, schema
from tracer.cli import main
from tracer.context import logs
from tracer.context.logs import rows as logrows

# the wall-clock second all examples share, and a trace whose monotonic clock reads 50 s then
WALL = int(datetime(2026, 12, 1, 10, 33, 50, tzinfo=UTC).timestamp()) * 10**9
OFFSET = WALL - 50 * 10**9
MONO = 50 * 10**9  # WALL on the trace clock

LOGRUS = ('time="2026-12-01T10:33:50.850904930Z" level=info msg=serving... '
          "address=/run/containerd/containerd.sock")
CAPNSLOG = "2026-12-01 10:33:50.910567 I | etcdmain: etcd Version: 3.4.23"
KLOG = ("I1201 10:33:50.123456    1234 secure_serving.go:213] Serving securely on "
        "127.0.0.1:6444")
ZAP_ISO = ('{"level":"info","ts":"2026-12-01T10:33:50.052Z","caller":"embed/etcd.go:127",'
           '"msg":"configuring client listeners","listen-client-urls":["http://127.0.0.1:2379"]}')
ZAP_EPOCH = ('{"level":"info","ts":' + f"{WALL // 10**9}.6204767" +
             ',"caller":"embed/etcd.go:558","msg":"cmux::serve","address":"127.0.0.1:2380"}')
K8S_JSON = ('{"ts":' + f"{WALL // 10**6}.4567" + ',"caller":"app/server.go:160","msg":'
            '"Version: v1.32.4+k3s1","v":0}')


def parse(line: str) -> logs.ParsedLine:
    return logs.parse_line(line, reference_ns=WALL, tz=UTC)


@pytest.mark.parametrize(
    ("line", "realtime_ns", "resolution_ns"),
    [
        (LOGRUS, WALL + 850_904_930, 1),
        (CAPNSLOG, WALL + 910_567_000, 1_000),
        (KLOG, WALL + 123_456_000, 1_000),
        (ZAP_ISO, WALL + 52_000_000, 1_000_000),  # etcd's zap writes milliseconds
        # zap's epoch-seconds float: 7 digits written, but a float64 keeps ~0.2 us: 1 us
        (ZAP_EPOCH, WALL + 620_476_000, 1_000),
        # Kubernetes' JSON: epoch milliseconds with 4 decimals: 100 ns
        (K8S_JSON, WALL + 456_700, 100),
        ('time="2026-12-01T10:33:50Z" level=info msg="Starting k3s"', WALL, 10**9),
        ("2026/12/01 10:33:50 http: TLS handshake error", WALL, 10**9),
        ("INFO[0000] Starting k3s", None, None),
    ],
)
def test_resolution_is_what_the_stamp_writes(line: str, realtime_ns: int | None,
                                             resolution_ns: int | None) -> None:
    p = parse(line)
    assert (p.realtime_ns, p.resolution_ns) == (realtime_ns, resolution_ns)


def test_journald_prefix_time_has_its_resolution() -> None:
    p = parse("Dec 01 10:33:50.250123 host k3s[77]: plain words")
    assert (p.realtime_ns, p.resolution_ns, p.pid) == (WALL + 250_123_000, 1_000, 77)


def own(line: str, received_ns: int) -> int | None:
    return logrows.own_time_ns(parse(line), received_ns, OFFSET)


def test_sub_ms_stamp_shortly_before_arrival_is_used() -> None:
    stamped = MONO + 850_904_930
    assert own(LOGRUS, stamped + 40_000) == stamped
    assert own(CAPNSLOG, MONO + 910_567_000 + 700_000) == MONO + 910_567_000
    assert own(KLOG, MONO + 123_456_000 + 5) == MONO + 123_456_000


def test_millisecond_and_second_stamps_keep_arrival() -> None:
    # truncation to 1 ms is coarser than arrival: zap ISO (etcd) never wins, however close
    assert own(ZAP_ISO, MONO + 52_000_000 + 10) is None
    assert own('time="2026-12-01T10:33:50Z" level=info msg=x', MONO + 10) is None
    assert own("INFO[0000] Starting k3s", MONO) is None
    assert own("plain words", MONO) is None


def test_a_stamp_after_arrival_is_rejected_beyond_its_resolution() -> None:
    stamped = MONO + 910_567_000
    # within one step after arrival (the true time was truncated): placed AT arrival
    assert own(CAPNSLOG, stamped - 400) == stamped - 400
    # more than one step later: the clock moved, the stamp is not believed
    assert own(CAPNSLOG, stamped - 1_001) is None
    assert own(LOGRUS, MONO + 850_904_930 - 2) is None


def test_a_stamp_too_long_before_arrival_is_rejected() -> None:
    stamped = MONO + 850_904_930
    bound = logrows.OWN_TIME_MAX_EARLY_NS
    assert own(LOGRUS, stamped + bound) == stamped
    assert own(LOGRUS, stamped + bound + 1) is None
    # klog read in the wrong zone (an hour off) is exactly what the bound is for
    p = logs.parse_line(KLOG, reference_ns=WALL, tz=UTC)
    wrong = logs.parse_line(KLOG, reference_ns=WALL, tz=logs.parse_timezone("+01:00"))
    assert p.realtime_ns is not None and wrong.realtime_ns is not None
    received = p.realtime_ns - OFFSET + 1000
    assert logrows.own_time_ns(p, received, OFFSET) == received - 1000
    assert logrows.own_time_ns(wrong, received, OFFSET) is None


def test_rows_record_which_time_placed_them_and_keep_the_received_time() -> None:
    r = logrows.LogRows("stderr", default_pid=4242)
    arrival = MONO + 910_567_000 + 300_000
    r.add_received(CAPNSLOG, parse(CAPNSLOG), arrival, "arrival", OFFSET)
    # a stack frame continuing it has no stamp: it sits at its entry's time
    r.add_received("\tgoroutine 1 [running]:", parse("\tgoroutine 1 [running]:"),
                   arrival + 10, "arrival", OFFSET)
    r.add_received(ZAP_ISO, parse(ZAP_ISO), arrival + 20, "arrival", OFFSET)
    r.add_received(KLOG, parse(KLOG), MONO + 123_456_000 + 900, "arrival", OFFSET)
    t = r.take()
    assert t is not None and t.schema.equals(schema.LOG)
    rows = t.to_pylist()
    assert [x["time_from"] for x in rows] == ["line-realtime", "previous-line", "arrival",
                                              "line-realtime"]
    assert [x["ts_ns"] for x in rows] == [MONO + 910_567_000, MONO + 910_567_000,
                                          arrival + 20, MONO + 123_456_000]
    assert [x["received_ns"] for x in rows] == [arrival, arrival + 10, arrival + 20,
                                                MONO + 123_456_000 + 900]
    # lines naming no process are the command's; klog names its own
    assert [x["pid"] for x in rows] == [4242, 4242, 4242, 1234]


def test_log_condition_uses_the_own_time() -> None:
    # --until/--end log:... take the row's ts_ns, which is the own stamp when it was used
    r = logrows.LogRows("stdout", default_pid=9)
    arrival = MONO + 850_904_930 + 2_000_000
    r.add_received(LOGRUS, parse(LOGRUS), arrival, "arrival", OFFSET)
    t = r.take()
    assert t is not None
    cond = conditions.parse("log:^serving")
    assert conditions.when(cond, {"log": t}) == MONO + 850_904_930


def test_journal_lines_use_their_own_stamp_over_journald_receipt(tmp_path: Path) -> None:
    # journald stamps on receipt like we do on arrival: a sub-ms stamp in the message wins
    boot = "951f66bf06104d158c17bd90ec31a690"
    received_us = (MONO + 850_904_930) // 1000 + 150
    rec = {"__REALTIME_TIMESTAMP": str((WALL + 850_904_930) // 1000 + 150),
           "__MONOTONIC_TIMESTAMP": str(received_us), "_BOOT_ID": boot, "_PID": "31",
           "SYSLOG_IDENTIFIER": "containerd", "MESSAGE": LOGRUS}
    f = tmp_path / "j.json"
    f.write_text(json.dumps(rec) + "\n")
    src = logs.JournalSource("containerd", command=["cat", str(f)], realtime_offset_ns=OFFSET)
    src._boot_id = boot
    src.start()
    src.stop()
    t = src.drain()
    assert t is not None
    row = t.to_pylist()[0]
    assert (row["ts_ns"], row["time_from"], row["received_ns"], row["pid"]) == (
        MONO + 850_904_930, "line-realtime", received_us * 1000, 31)


def test_command_output_rows_carry_the_command_pid_and_own_stamps() -> None:
    # a real process prints a logrus line stamped now (nanoseconds) and one stamped an hour ago
    script = (
        "import sys, time\n"
        "from datetime import datetime, timezone\n"
        "def stamp(t):\n"
        "    s = datetime.fromtimestamp(t // 10**9, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')\n"
        "    return f'{s}.{t % 10**9:09d}Z'\n"
        "now = time.time_ns()\n"
        "print(f'time=\"{stamp(now)}\" level=info msg=now', flush=True)\n"
        "print(f'time=\"{stamp(now - 3600 * 10**9)}\" level=info msg=old', flush=True)\n"
        "print('no stamp', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    src = logs.CommandOutputSource(proc.stdout, "stdout", None, pid=proc.pid,
                                   realtime_offset_ns=logrows.realtime_offset_ns())
    src.start()
    proc.wait()
    src.stop()
    t = src.drain()
    assert t is not None
    rows = {r["message"]: r for r in t.to_pylist()}
    assert {r["pid"] for r in rows.values()} == {proc.pid}
    now = rows["now"]
    assert now["time_from"] == "line-realtime"
    assert 0 <= now["received_ns"] - now["ts_ns"] < logrows.OWN_TIME_MAX_EARLY_NS
    assert (rows["old"]["time_from"], rows["old"]["ts_ns"]) == ("arrival",
                                                                 rows["old"]["received_ns"])
    assert rows["no stamp"]["time_from"] == "arrival"


def test_missing_table_is_noted_by_the_reader_and_warned_by_info(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "t"
    d.mkdir()
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "t",
                          "start_ns": 0, "rows": {"process": 3, "log": 0}})
    w = schema.StreamWriter(d / "log.arrows", schema.LOG)
    w.close()
    t = schema.load(d)
    assert set(t.missing) == {"process"} and "3 rows were recorded" in t.missing["process"]
    assert t.table("process").num_rows == 0
    assert main(["info", str(d), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["missing"]) == {"process"}
    assert main(["info", str(d)]) == 0
    assert "WARNING   process: process.arrows is missing" in capsys.readouterr().out
    os.unlink(d / "log.arrows")
    assert set(schema.load(d).missing) == {"process", "log"}


def test_old_traces_read_without_received_ns(tmp_path: Path) -> None:
    # a schema 1.1 log table (no received_ns column) reads with the column null
    import pyarrow as pa

    old = pa.schema([f for f in schema.LOG if f.name != "received_ns"])
    d = tmp_path / "t"
    d.mkdir()
    schema.write_meta(d, {"schema_version": "1.1", "tracer_version": "t", "start_ns": 0})
    w = schema.StreamWriter(d / "log.arrows", old)
    w.write(pa.Table.from_pylist([{"ts_ns": 5, "source": "stdout", "message": "m",
                                   "raw": "m", "time_from": "arrival"}], schema=old))
    w.close()
    t = schema.load(d).table("log")
    assert t.schema.equals(schema.LOG) and t["received_ns"].to_pylist() == [None]
    assert t["ts_ns"].to_pylist() == [5]
