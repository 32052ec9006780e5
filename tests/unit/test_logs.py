"""Log parsing, alignment and ingest: every format k3s logs show, on hand-computed times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.builders import table
from tracer import schema
from tracer._errors import TraceError, UsageError
from tracer.cli import cli
from tracer.context import ContextSource, logs
from tracer.context.logs import parse_line

# 2025-03-21T10:11:12Z
T0 = 1742551872 * 10**9
REF = T0  # reference wall time for formats without a year


def p(line: str) -> logs.ParsedLine:
    return parse_line(line, reference_ns=REF, tz=UTC)


# --- one line per format --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "level", "component", "message", "realtime_ns", "fmt"),
    [
        # k3s (logrus text, not on a terminal), whole seconds
        ('time="2025-03-21T10:11:12Z" level=info msg="Starting k3s v1.32.4+k3s1 (9d3b1ae7)"',
         "info", None, "Starting k3s v1.32.4+k3s1 (9d3b1ae7)", T0, "logrus"),
        # nanoseconds and a zone offset: 11:11:12.123456789+01:00 is 10:11:12.123456789Z
        ('time="2025-03-21T11:11:12.123456789+01:00" level=warning msg="Unable to read '
         '/etc/rancher/k3s/k3s.yaml, please start server with --write-kubeconfig-mode" '
         "component=tunnel",
         "warn", "tunnel", "Unable to read /etc/rancher/k3s/k3s.yaml, please start server with "
         "--write-kubeconfig-mode", T0 + 123456789, "logrus"),
        # escaped quotes inside msg, extra fields after it
        ('time="2025-03-21T10:11:12.5Z" level=error msg="failed: \\"x\\" not found" error=EOF',
         "error", None, 'failed: "x" not found', T0 + 500_000_000, "logrus"),
        # containerd (logrus): unquoted msg, the plugin type as component
        ('time="2025-03-21T10:11:12.000001000Z" level=info msg="loading plugin '
         '\\"io.containerd.snapshotter.v1.overlayfs\\"..." type=io.containerd.snapshotter.v1',
         "info", "io.containerd.snapshotter.v1",
         'loading plugin "io.containerd.snapshotter.v1.overlayfs"...', T0 + 1000, "logrus"),
        ('time="2025-03-21T10:11:12Z" level=info msg=serving... address=/run/k3s/containerd/'
         "containerd.sock", "info", None, "serving...", T0, "logrus"),
        # klog: no year (from the reference), microseconds, pid, caller
        ("I0321 10:11:12.123456    1234 secure_serving.go:213] Serving securely on "
         "127.0.0.1:6444", "info", "secure_serving", "Serving securely on 127.0.0.1:6444",
         T0 + 123456000, "klog"),
        ("E0321 10:11:13.000000    1234 reflector.go:147] k8s.io/client-go: Failed to watch",
         "error", "reflector", "k8s.io/client-go: Failed to watch", T0 + 10**9, "klog"),
        ("W0321 10:11:12.000000       7 warnings.go:70] deprecated", "warn", "warnings",
         "deprecated", T0, "klog"),
        # etcd / zap JSON: ISO ts with ms, component = caller's package
        ('{"level":"info","ts":"2025-03-21T10:11:12.640Z","caller":"embed/etcd.go:117",'
         '"msg":"configuring peer listeners","listen-peer-urls":["http://127.0.0.1:2380"]}',
         "info", "embed", "configuring peer listeners", T0 + 640_000_000, "json"),
        # zap with a +0000-style zone and a named logger
        ('{"level":"warn","ts":"2025-03-21T10:11:12.001+0000","logger":"etcd-client",'
         '"caller":"v3/retry_interceptor.go:62","msg":"retrying of unary invoker failed"}',
         "warn", "etcd-client", "retrying of unary invoker failed", T0 + 1_000_000, "json"),
        # zap numeric ts (epoch seconds, float)
        ('{"level":"error","ts":1742551872.25,"caller":"etcdserver/server.go:2069",'
         '"msg":"publish error"}', "error", "etcdserver", "publish error", T0 + 250_000_000,
         "json"),
        # etcd 3.4 capnslog
        ("2025-03-21 10:11:12.453676 I | embed: ready to serve client requests", "info", "embed",
         "ready to serve client requests", T0 + 453676000, "capnslog"),
        ("2025-03-21 10:11:12.000000 N | etcdserver/membership: set the initial cluster version",
         "info", "etcdserver/membership", "set the initial cluster version", T0, "capnslog"),
        # logrus on a terminal
        ("INFO[0000] Starting k3s v1.32.4+k3s1", "info", None, "Starting k3s v1.32.4+k3s1", None,
         "logrus-tty"),
        ("WARN[2025-03-21T10:11:12Z] low disk", "warn", None, "low disk", T0, "logrus-tty"),
        # Go's standard log
        ("2025/03/21 10:11:12 http: TLS handshake error from 127.0.0.1:5: EOF", None, None,
         "http: TLS handshake error from 127.0.0.1:5: EOF", T0, "golog"),
        # unknown text: kept raw
        ("+ /usr/bin/k3s server --flannel-backend=vxlan", None, None,
         "+ /usr/bin/k3s server --flannel-backend=vxlan", None, "raw"),
        ("level= msg= appear in the middle of prose", None, None,
         "level= msg= appear in the middle of prose", None, "raw"),
    ],
)
def test_format(line: str, level: str | None, component: str | None, message: str,
                realtime_ns: int | None, fmt: str) -> None:
    r = p(line)
    assert (r.level, r.component, r.message, r.realtime_ns, r.format) == (
        level, component, message, realtime_ns, fmt)
    assert not r.continuation


def test_klog_pid_is_the_thread_id_field() -> None:
    assert p("I0321 10:11:12.000000    4321 server.go:1] x").pid == 4321


@pytest.mark.parametrize(
    ("prefix", "realtime_ns"),
    [
        ("Mar 21 10:11:12 node1 k3s[1234]: ", T0),  # short
        ("Mar 21 10:11:12.250000 node1 k3s[1234]: ", T0 + 250_000_000),  # short-precise
        ("2025-03-21T11:11:12+0100 node1 k3s[1234]: ", T0),  # short-iso
    ],
)
def test_journald_prefix(prefix: str, realtime_ns: int) -> None:
    # a raw line behind the prefix gets the prefix's time, pid and identifier
    r = p(prefix + "some unstructured output")
    assert (r.message, r.pid, r.component, r.realtime_ns, r.level) == (
        "some unstructured output", 1234, "k3s", realtime_ns, None)
    # a timed line behind it keeps its own (finer) time and level
    r = p(prefix + 'time="2025-03-21T10:11:12.999Z" level=info msg="k3s is up and running"')
    assert (r.message, r.level, r.pid, r.component, r.realtime_ns) == (
        "k3s is up and running", "info", 1234, "k3s", T0 + 999_000_000)


def test_journald_prefix_klog_and_etcd_json_inside() -> None:
    r = p("Mar 21 10:11:12 node1 k3s[99]: I0321 10:11:12.100000      99 controller.go:1] synced")
    assert (r.level, r.component, r.pid, r.realtime_ns, r.format) == (
        "info", "controller", 99, T0 + 100_000_000, "klog")
    r = p('Mar 21 10:11:12 node1 k3s[99]: {"level":"info","ts":"2025-03-21T10:11:12.2Z",'
          '"logger":"etcd","msg":"ready"}')
    assert (r.level, r.component, r.pid, r.message) == ("info", "etcd", 99, "ready")


def test_journald_prefix_without_pid() -> None:
    r = p("Mar 21 10:11:12 node1 kernel: cni0: port 1(veth1) entered forwarding state")
    assert (r.component, r.pid, r.message) == ("kernel", None,
                                              "cni0: port 1(veth1) entered forwarding state")


def test_year_comes_from_the_reference_across_new_year() -> None:
    # a December line read with a January reference belongs to the year before
    ref = 1735689600 * 10**9 + 3600 * 10**9  # 2025-01-01T01:00:00Z
    r = parse_line("I1231 23:59:59.000000 1 x.go:1] late", reference_ns=ref, tz=UTC)
    assert r.realtime_ns == 1735689599 * 10**9  # 2024-12-31T23:59:59Z
    r = parse_line("Jan  1 00:00:01 h k3s[1]: x", reference_ns=ref, tz=UTC)
    assert r.realtime_ns == 1735689601 * 10**9


def test_zone_less_times_use_the_given_zone() -> None:
    plus2 = logs.parse_timezone("+02:00")
    r = parse_line("I0321 12:11:12.000000 1 x.go:1] m", reference_ns=REF, tz=plus2)
    assert r.realtime_ns == T0


def test_ansi_colours_are_ignored_for_parsing() -> None:
    r = p("\x1b[36mINFO\x1b[0m[0000] Starting k3s")
    assert (r.level, r.message) == ("info", "Starting k3s")


WINTER = datetime(2025, 1, 15, 12, 0)
SUMMER = datetime(2025, 7, 15, 12, 0)


@pytest.mark.parametrize(
    ("text", "winter_h", "summer_h"),
    [("UTC", 0, 0), ("z", 0, 0), ("+01:00", 1, 1), ("-0530", -5.5, -5.5), ("+0930", 9.5, 9.5),
     ("Europe/Berlin", 1, 2), ("America/New_York", -5, -4)],
)
def test_parse_timezone_gives_the_zones_offsets(text: str, winter_h: float,
                                                summer_h: float) -> None:
    tz = logs.parse_timezone(text)
    assert tz.utcoffset(WINTER) == timedelta(hours=winter_h)
    assert tz.utcoffset(SUMMER) == timedelta(hours=summer_h)


def test_parse_timezone_rejects_with_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown time zone"):
        logs.parse_timezone("Mars/Olympus")


# --- multi-line entries ---------------------------------------------------------------------

PANIC = """\
time="2025-03-21T10:11:12Z" level=info msg="Running kubelet"
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]

goroutine 1 [running]:
github.com/k3s-io/k3s/pkg/agent.(*Agent).Run(0xc000a1e000, {0x5d2f40, 0xc0000b0000})
\t/go/src/github.com/k3s-io/k3s/pkg/agent/run.go:311 +0x1d
created by main.main in goroutine 1
\t/go/src/main.go:10 +0x25
time="2025-03-21T10:11:14Z" level=error msg="exited"
""".splitlines()


def test_multiline_panic_kept_line_by_line_and_attached() -> None:
    t, r = logs.rows_from_lines(PANIC, "file:k3s.log", offset_ns=T0 - 5 * 10**9,
                                reference_ns=REF, tz=UTC)
    rows = t.to_pylist()
    assert [x["raw"] for x in rows] == PANIC  # every line, in order, unchanged
    # the panic starts an entry; its dump continues it (level panic), and takes its time
    assert [x["level"] for x in rows] == ["info"] + ["panic"] * 8 + ["error"]
    assert [x["ts_ns"] for x in rows] == [5 * 10**9] * 9 + [7 * 10**9]
    assert [x["time_from"] for x in rows] == (
        ["line-realtime"] + ["previous-line"] * 8 + ["line-realtime"])
    assert rows[4]["message"] == "goroutine 1 [running]:"
    assert rows[6]["message"] == "/go/src/github.com/k3s-io/k3s/pkg/agent/run.go:311 +0x1d"
    assert r.rows == 10 and r.own_time == 2 and r.neighbour_time == 8 and r.unparsed == 0


def test_indented_continuation_inherits_klog_fields() -> None:
    lines = ["E0321 10:11:12.000000    77 server.go:5] multi-line error:",
             "    detail one", "\tdetail two"]
    t, _ = logs.rows_from_lines(lines, "s", offset_ns=0, reference_ns=REF, tz=UTC)
    assert t["level"].to_pylist() == ["error"] * 3
    assert t["pid"].to_pylist() == [77] * 3
    assert t["component"].to_pylist() == ["server"] * 3


def test_untimed_lines_before_the_first_timed_line_take_its_time() -> None:
    lines = ["+ set -x", "starting", 'time="2025-03-21T10:11:12Z" level=info msg="go"']
    t, r = logs.rows_from_lines(lines, "s", offset_ns=T0 - 10**9, reference_ns=REF, tz=UTC)
    assert t["ts_ns"].to_pylist() == [10**9] * 3
    assert t["time_from"].to_pylist() == ["next-line", "next-line", "line-realtime"]
    assert t["level"].to_pylist() == [None, None, "info"]
    assert r.unparsed == 2


def test_a_file_without_any_time_keeps_its_lines_untimed() -> None:
    t, r = logs.rows_from_lines(["a", "b"], "s", offset_ns=0, reference_ns=REF, tz=UTC)
    assert t["raw"].to_pylist() == ["a", "b"]
    assert t["ts_ns"].null_count == 2 and r.no_time == 2


# --- journald JSON records ------------------------------------------------------------------

BOOT = "951f66bf06104d158c17bd90ec31a690"


def journal_record(**over: object) -> dict[str, object]:
    # the fields `journalctl -o json` prints for a k3s.service stdout line (values are strings)
    rec: dict[str, object] = {
        "__CURSOR": "s=0b2f;i=1a2b;b=951f66bf06104d158c17bd90ec31a690;m=2d2b6ac5;t=6;x=1",
        "__REALTIME_TIMESTAMP": str(T0 // 1000 + 250_000),
        "__MONOTONIC_TIMESTAMP": "757819077",
        "_BOOT_ID": BOOT,
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "3",
        "SYSLOG_IDENTIFIER": "k3s",
        "_PID": "1234",
        "_COMM": "k3s-server",
        "_SYSTEMD_UNIT": "k3s.service",
        "_TRANSPORT": "stdout",
        "MESSAGE": 'time="2025-03-21T10:11:12.249Z" level=info '
                   'msg="Kube API server is now running"',
    }
    rec.update(over)
    return rec


def test_journal_same_boot_is_exact_via_monotonic() -> None:
    raw, parsed, ts, time_from = logs.journal_row(journal_record(), boot_id=BOOT,
                                                  offset_ns=123)
    assert (ts, time_from) == (757_819_077_000, "journal-monotonic")
    assert (parsed.level, parsed.message, parsed.pid, parsed.component) == (
        "info", "Kube API server is now running", 1234, "k3s")
    assert raw.startswith('time="2025-03-21')


def test_journal_boot_id_with_dashes_matches() -> None:
    dashed = "951f66bf-0610-4d15-8c17-bd90ec31a690"
    assert logs.journal_row(journal_record(), boot_id=dashed.replace("-", ""),
                            offset_ns=0)[3] == "journal-monotonic"


def test_journal_other_boot_uses_realtime_and_offset() -> None:
    offset = T0 - 100 * 10**9
    _, _, ts, time_from = logs.journal_row(journal_record(_BOOT_ID="0" * 32), boot_id=BOOT,
                                           offset_ns=offset)
    assert (ts, time_from) == (100 * 10**9 + 250_000_000, "journal-realtime")


def test_journal_binary_message_and_no_message() -> None:
    raw, parsed, _, _ = logs.journal_row(journal_record(MESSAGE=[104, 105, 0xFF]), boot_id=BOOT,
                                         offset_ns=0)
    assert raw == "hi\ufffd" and parsed.level is None
    raw, _, _, _ = logs.journal_row(journal_record(MESSAGE=None), boot_id=BOOT, offset_ns=0)
    assert raw == ""


def test_journal_source_follows_a_real_process(tmp_path: Path) -> None:
    # journalctl cannot run here (no journald): a real process prints real journal JSON lines
    recs = [journal_record(), journal_record(MESSAGE="plain text", __MONOTONIC_TIMESTAMP="900")]
    f = tmp_path / "j.json"
    f.write_text("".join(json.dumps(r) + "\n" for r in recs) + "not json\n")
    src = logs.JournalSource("k3s", command=["cat", str(f)], realtime_offset_ns=0)
    assert isinstance(src, ContextSource)
    src._boot_id = BOOT  # the records come from "this" boot
    src.start()
    src.stop()
    t = src.drain()
    assert t is not None and t.schema.equals(schema.LOG)
    rows = t.to_pylist()
    assert [r["source"] for r in rows] == ["journal:k3s"] * 3
    assert [r["ts_ns"] for r in rows[:2]] == [757_819_077_000, 900_000]
    assert [r["time_from"] for r in rows] == ["journal-monotonic", "journal-monotonic", "arrival"]
    assert rows[2]["raw"] == "not json"
    assert src.drain() is None


def test_journal_source_reports_a_missing_program() -> None:
    src = logs.JournalSource("k3s", command=["/nonexistent/journalctl"])
    src.start()
    src.stop()
    assert src.drain() is None
    assert src.problem is not None and "cannot run" in src.problem


# --- command output -------------------------------------------------------------------------


def test_command_output_passthrough_is_byte_exact_and_lines_are_stamped() -> None:
    out_r, out_w = os.pipe()
    payload = ('time="2025-03-21T10:11:12Z" level=info msg="a"\r\n'
               "plain \xe9\n\n\tindented\nno newline at end").encode()
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    copy = os.fdopen(out_w, "wb")
    src = logs.CommandOutputSource(proc.stdout, "stdout", copy)
    before = time.monotonic_ns()
    src.start()
    assert proc.stdin is not None
    proc.stdin.write(payload)  # not communicate(): that would read the pipe the source reads
    proc.stdin.close()
    proc.wait()
    src.stop()
    after = time.monotonic_ns()
    copy.close()
    with os.fdopen(out_r, "rb") as f:
        assert f.read() == payload  # unchanged, \r and all
    t = src.drain()
    assert t is not None
    assert t["raw"].to_pylist() == ['time="2025-03-21T10:11:12Z" level=info msg="a"',
                                    "plain \xe9", "", "\tindented", "no newline at end"]
    assert t["level"].to_pylist()[0] == "info"
    assert set(t["source"].to_pylist()) == {"stdout"}
    assert set(t["time_from"].to_pylist()) == {"arrival"}
    stamps = t["ts_ns"].to_pylist()
    assert stamps == sorted(stamps) and before <= stamps[0] and stamps[-1] <= after


def test_command_output_invalid_utf8_is_kept() -> None:
    r, w = os.pipe()
    os.write(w, b"bad \xff byte\n")
    os.close(w)
    src = logs.CommandOutputSource(r, "stderr", None)
    src.start()
    src.stop()
    os.close(r)
    t = src.drain()
    assert t is not None and t["raw"].to_pylist() == ["bad \ufffd byte"]
    assert t["source"].to_pylist() == ["stderr"]


def test_command_output_cuts_endless_lines_without_dropping() -> None:
    r, w = os.pipe()
    src = logs.CommandOutputSource(r, "stdout", None)
    src.start()
    data = b"x" * (logs.MAX_LINE_BYTES * 2 + 10)
    with os.fdopen(w, "wb") as f:
        f.write(data)
    src.stop()
    os.close(r)
    t = src.drain()
    assert t is not None
    assert "".join(t["raw"].to_pylist()) == data.decode()
    assert max(len(x) for x in t["raw"].to_pylist()) <= logs.MAX_LINE_BYTES


# --- ingest ---------------------------------------------------------------------------------

OFFSET = T0 - 50 * 10**9  # the trace's realtime offset: T0 is monotonic 50 s


def make_trace(tmp_path: Path, log_rows: list[dict[str, object]] | None = None) -> Path:
    d = tmp_path / "trace"
    d.mkdir()
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "test",
                          "start_ns": 49 * 10**9, "realtime_offset_ns": OFFSET})
    if log_rows is not None:
        w = schema.StreamWriter(d / "log.arrows", schema.LOG)
        w.write(table("log", log_rows))
        w.close()
    return d


JOURNAL_TEXT = """\
Mar 21 10:11:12 node1 k3s[1234]: time="2025-03-21T10:11:12.100Z" level=info msg="Starting k3s v1.32.4+k3s1 (9d3b1ae7)"
Mar 21 10:11:13 node1 k3s[1234]: I0321 10:11:13.000000    1234 secure_serving.go:213] Serving securely on 127.0.0.1:6444
Mar 21 10:11:14 node1 k3s[1234]: ???
"""  # noqa: E501


def test_ingest_merges_aligns_and_replaces(tmp_path: Path) -> None:
    d = make_trace(tmp_path, [dict(ts_ns=50 * 10**9 + 500_000_000, source="stdout",
                                   message="between", raw="between", time_from="arrival")])
    f = tmp_path / "k3s.journal"
    f.write_text(JOURNAL_TEXT)
    r = logs.ingest(d, f, tz=UTC)
    assert (r.source, r.rows, r.own_time, r.unparsed, r.replaced) == ("file:k3s.journal", 3, 3,
                                                                        1, 0)
    tr = schema.load(d)
    log = tr.table("log")
    assert log["ts_ns"].to_pylist() == [50_100_000_000, 50_500_000_000, 51 * 10**9, 52 * 10**9]
    assert log["source"].to_pylist() == ["file:k3s.journal", "stdout", "file:k3s.journal",
                                         "file:k3s.journal"]
    assert log["level"].to_pylist() == ["info", None, "info", None]
    assert log["message"].to_pylist()[3] == "???"
    assert tr.meta["ingested_logs"][0]["rows"] == 3
    # again, same source: replaced, not doubled
    r2 = logs.ingest(d, f, tz=UTC)
    assert r2.replaced == 3
    assert schema.load(d).table("log").num_rows == 4
    assert not (d / "log.arrows.tmp").exists()


def test_ingest_gzip_and_named_source(tmp_path: Path) -> None:
    import gzip

    d = make_trace(tmp_path)
    f = tmp_path / "etcd.log.gz"
    with gzip.open(f, "wt") as g:
        g.write('{"level":"info","ts":"2025-03-21T10:11:12.640Z","caller":"embed/etcd.go:117",'
                '"msg":"configuring peer listeners"}\n')
    r = logs.ingest(d, f, "etcd")
    assert r.source == "file:etcd"
    log = schema.load(d).table("log")
    assert log["ts_ns"].to_pylist() == [50_640_000_000]
    assert log["component"].to_pylist() == ["embed"]


def test_ingest_errors_are_one_line(tmp_path: Path) -> None:
    d = make_trace(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        logs.ingest(d, tmp_path / "missing.log")
    with pytest.raises(UsageError, match="is a directory"):
        logs.ingest(d, tmp_path)
    with pytest.raises(TraceError, match="no such trace"):
        logs.ingest(tmp_path / "nope", tmp_path / "x")
    schema.write_meta(d, {"schema_version": schema.SCHEMA_VERSION, "tracer_version": "t",
                          "start_ns": 0})
    f = tmp_path / "a.log"
    f.write_text("x\n")
    with pytest.raises(TraceError, match="realtime_offset_ns"):
        logs.ingest(d, f)


def test_ingest_log_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    import tracer.cli.ingest_log  # noqa: F401  (registers the command)

    d = make_trace(tmp_path)
    f = tmp_path / "k3s.log"
    f.write_text(JOURNAL_TEXT)
    runner = CliRunner()
    res = runner.invoke(cli, ["ingest-log", str(d), str(f), "--source", "k3s",
                              "--timezone", "UTC"])
    assert res.exit_code == 0, res.output
    assert "added 3 lines" in res.output and "file:k3s" in res.output
    res = runner.invoke(cli, ["ingest-log", str(d), str(tmp_path / "none.log")])
    assert res.exit_code == UsageError.exit_code
    assert "no such file" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["ingest-log", str(d), str(f), "--timezone", "Nowhere/Land"])
    assert res.exit_code == UsageError.exit_code and "unknown time zone" in res.output


def test_log_rows_table_matches_schema() -> None:
    rows = logs.LogRows("stdout")
    rows.add("x", p("x"), -5, "line-realtime")  # before boot: no monotonic time
    t = rows.take()
    assert t is not None and t.schema.equals(schema.LOG)
    assert t["ts_ns"].to_pylist() == [None]
    assert rows.take() is None
