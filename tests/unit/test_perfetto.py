"""Perfetto / chrome://tracing export validated against the trace-event format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_report_scenario import EVIL, SECRETS, analysis
from tracer.report.perfetto import CRITICAL_PATH_PID, PerfettoExport

PHASES = {"X", "i", "M", "s", "f", "B", "E"}


def export(redact: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        PerfettoExport.from_analysis(analysis(redact=redact)).render_bytes()
    )
    return doc


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return export()


def test_every_event_is_valid_trace_event_format(doc: dict[str, Any]) -> None:
    assert doc["displayTimeUnit"] == "ms"
    events = doc["traceEvents"]
    assert events
    for e in events:
        assert e["ph"] in PHASES, e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int), e
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0, e
        assert isinstance(e["name"], str), e
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0, e
        if e["ph"] == "i":
            assert e["s"] in ("t", "p", "g")
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "process_sort_index")


def test_ts_is_microseconds_since_recording_start(doc: dict[str, Any]) -> None:
    events = doc["traceEvents"]
    # modprobe br_netfilter: forked 299.8 ms, exited 320 ms after the recording started
    mp = next(e for e in events if e["ph"] == "X" and e["pid"] == 120 and e["cat"] == "process")
    assert mp["ts"] == pytest.approx(299_800) and mp["dur"] == pytest.approx(20_200)
    listen = next(e for e in events if e["ph"] == "i" and e["name"] == "listen 127.0.0.1:6444")
    assert listen["ts"] == 2_500_000


def test_processes_are_named_tracks(doc: dict[str, Any]) -> None:
    names = {
        e["pid"]: e["args"]["name"]
        for e in doc["traceEvents"]
        if e["ph"] == "M" and e["name"] == "process_name"
    }
    assert names[110] == "containerd 110 (containerd)"
    assert names[CRITICAL_PATH_PID] == "k3sprof critical path"
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "process"]
    assert {e["pid"] for e in slices} == {100, 110, 120, 121, 130, 131, 140}


def test_waits_are_flows_from_ready_to_waiter(doc: dict[str, Any]) -> None:
    events = doc["traceEvents"]
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and set(starts) == set(ends)
    for fid, s in starts.items():
        f = ends[fid]
        assert f["bp"] == "e" and f["ts"] >= s["ts"] and s["cat"] == f["cat"]
    sock = next(s for s in starts.values() if "containerd.sock" in s["name"])
    assert (sock["pid"], sock["ts"]) == (110, 1_400_000)  # containerd's listen
    assert (ends[sock["id"]]["pid"], ends[sock["id"]]["ts"]) == (100, 1_950_000)  # first ok


def test_critical_path_track_sums_to_total(doc: dict[str, Any]) -> None:
    segs = [e for e in doc["traceEvents"] if e.get("cat") == "critical_path"]
    total = analysis().total_ns / 1000
    assert sum(e["dur"] for e in segs) == pytest.approx(total)


def test_redacted_and_escaped_as_json() -> None:
    raw = PerfettoExport.from_analysis(analysis()).render_bytes().decode()
    for secret in SECRETS:
        assert secret not in raw
    # JSON keeps the odd process name as data; the consumer (Perfetto UI) never runs it
    assert any(
        EVIL in json.dumps(e, ensure_ascii=False) or EVIL[:15] in e.get("name", "")
        for e in json.loads(raw)["traceEvents"]
    )
    unredacted = PerfettoExport.from_analysis(analysis(redact=False))
    assert all(s in unredacted.render_bytes().decode() for s in SECRETS)


def test_deterministic() -> None:
    assert json.dumps(export()) == json.dumps(export())
    a = PerfettoExport.from_analysis(analysis()).render_bytes()
    assert a == PerfettoExport.from_analysis(analysis()).render_bytes()
