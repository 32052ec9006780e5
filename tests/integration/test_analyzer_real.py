"""The analyzer on REAL recordings of planted dependencies whose truth the workload logs itself.

Each workload process writes JSON lines with time.monotonic_ns() (the trace's clock) to a log
file: the analyzer's answers are checked against that ground truth, not against itself. The
recorder is system-wide, so every check selects this workload's own processes and ports.
"""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.builders import analyze_json
from tests.integration.recording import descendants, etcdctl_before_etcd, free_port, record
from tracer import schema

pytestmark = pytest.mark.bpf

MS = 1_000_000

# A server that listens only after a delay, and a client that retries with a fresh socket at a
# fixed interval until a connect succeeds, then exits last. Both log their truth.
LISTENER_WORKLOAD = textwrap.dedent("""
    import json, os, socket, subprocess, sys, time
    port, log, role = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    def note(**kv):
        with open(log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **kv}) + "\\n")
    if role == "main":
        srv = subprocess.Popen([sys.executable, __file__, str(port), log, "server"])
        cli = subprocess.Popen([sys.executable, __file__, str(port), log, "client"])
        cli.wait(); srv.wait()
    elif role == "server":
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        time.sleep(0.75)
        t = time.monotonic_ns(); s.listen(8); note(event="listen", t=t)
        c, _ = s.accept(); c.close(); s.close()
    else:
        time.sleep(0.1)
        while True:
            c = socket.socket()
            t = time.monotonic_ns()
            try:
                c.connect(("127.0.0.1", port))
                note(event="attempt", t=t, ok=True); c.close()
                # outlive the server (which exits once it has accepted), so main's last
                # child wait is this client's: with scheduler data the analyzer sees which
                # child's exit woke main, and the two exits raced (68 ms apart at load 6)
                time.sleep(0.3); break
            except ConnectionRefusedError:
                note(event="attempt", t=t, ok=False); c.close()
            time.sleep(0.1 - (time.monotonic_ns() - t) / 1e9)
""")

# An HTTP server that listens at once but answers 503 until a moment it logs; a client polling
# it with a fresh connection at a fixed interval until 200; and an irregular client.
HTTP_WORKLOAD = textwrap.dedent("""
    import http.server, json, os, socket, subprocess, sys, time
    port, log, role = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    def note(**kv):
        with open(log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "role": role, **kv}) + "\\n")
    if role == "main":
        procs = [subprocess.Popen([sys.executable, __file__, str(port), log, r])
                 for r in ("server", "poller", "irregular")]
        for p in procs[1:]:
            p.wait()
        procs[0].terminate(); procs[0].wait()
    elif role == "server":
        ready_at = time.monotonic_ns() + 900 * 1_000_000
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                ready = time.monotonic_ns() >= ready_at
                self.send_response(200 if ready else 503); self.end_headers()
            def log_message(self, *a): pass
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        note(event="ready", t=ready_at)
        srv.serve_forever()
    elif role == "poller":
        time.sleep(0.2)
        while True:
            c = socket.socket()  # a fresh connection per attempt, like k3s's /readyz poll
            t = time.monotonic_ns()
            c.connect(("127.0.0.1", port))
            c.sendall(b"GET /readyz HTTP/1.0\\r\\n\\r\\n")
            code = int(c.makefile("rb").readline().split()[1])
            c.close()
            note(event="attempt", t=t, code=code)
            if code == 200:
                break
            time.sleep(0.15 - (time.monotonic_ns() - t) / 1e9)
    else:
        time.sleep(0.2)
        for gap in (0.007, 0.21, 0.033, 0.4, 0.011, 0.09, 0.26, 0.015, 0.5):
            time.sleep(gap)
            t = time.monotonic_ns()
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"GET /x HTTP/1.0\\r\\n\\r\\n"); c.recv(100)
            note(event="connect", t=t)
""")


def _run(tmp_path: Path, source: str) -> tuple[dict[str, Any], list[dict[str, Any]], set[int]]:
    script = tmp_path / "workload.py"
    script.write_text(source)
    log = tmp_path / "truth.jsonl"
    port = free_port()
    out = tmp_path / "t"
    record(out, [sys.executable, str(script), str(port), str(log), "main"])
    trace = schema.load(out)
    mine = descendants(trace, int(trace.meta["command_pid"]))
    truth = [json.loads(line) for line in log.read_text().splitlines()]
    result = analyze_json(trace)
    for t in truth:
        t["port"] = port
    return result, truth, mine


def _mine(result: dict[str, Any], pids: set[int], kind: str, port: int) -> list[dict[str, Any]]:
    return [w for w in result["waits"] if w["kind"] == kind and w["waiter"]["pid"] in pids
            and w["endpoint"] == f"127.0.0.1:{port}"]


def test_listener_wait_matches_the_workloads_own_truth(tmp_path: Path) -> None:
    result, truth, mine = _run(tmp_path, LISTENER_WORKLOAD)
    port = truth[0]["port"]
    attempts = [t for t in truth if t["event"] == "attempt"]
    (listen,) = [t for t in truth if t["event"] == "listen"]
    client_pid = attempts[0]["pid"]
    (w,) = [w for w in _mine(result, mine, "listener", port) if w["waiter"]["pid"] == client_pid]
    ok = next(a for a in attempts if a["ok"])
    assert w["attempts"] == len(attempts) >= 5
    assert w["target"]["pid"] == listen["pid"]
    assert abs(w["first_attempt_ns"] - attempts[0]["t"]) < 1 * MS
    assert abs(w["ready_ns"] - listen["t"]) < 1 * MS
    assert abs(w["first_ok_ns"] - ok["t"]) < 1 * MS
    assert abs(w["lag_ns"] - (ok["t"] - listen["t"])) < 2 * MS
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(attempts)]
    assert abs(w["interval_ns"] - statistics.median(gaps)) < 2 * MS
    # the client's wait is on the critical path to the command's exit, through the server
    kinds = {(s["kind"], s["pid"]) for s in result["critical_path"]}
    assert ("wait:poll-lag", client_pid) in kinds and ("run", listen["pid"]) in kinds
    assert sum(s["duration_ns"] for s in result["critical_path"]) == result["total_ns"]


def test_http_readiness_poll_and_irregular_client(tmp_path: Path) -> None:
    result, truth, mine = _run(tmp_path, HTTP_WORKLOAD)
    port = truth[0]["port"]
    attempts = [t for t in truth if t["role"] == "poller"]
    poller = attempts[0]["pid"]
    irregular = next(t["pid"] for t in truth if t["role"] == "irregular")
    polls = _mine(result, mine, "poll", port)
    (w,) = [w for w in polls if w["waiter"]["pid"] == poller]
    assert attempts[-1]["code"] == 200 and attempts[0]["code"] == 503
    assert w["attempts"] == len(attempts) >= 5
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(attempts)]
    assert abs(w["interval_ns"] - statistics.median(gaps)) < 5 * MS
    assert abs(w["ended_ns"] - attempts[-1]["t"]) < 1 * MS
    assert abs(w["first_attempt_ns"] - attempts[0]["t"]) < 1 * MS
    assert w["outcomes"] == {"ok": len(attempts)}  # every connect succeeded: only HTTP said no
    assert not [w for w in polls if w["waiter"]["pid"] == irregular]
    assert not _mine(result, mine, "listener", port)


@pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("etcdctl")),
                    reason="needs Debian etcd-server and etcd-client")
def test_etcdctl_before_etcd_is_a_listener_wait(tmp_path: Path) -> None:
    cmd, port = etcdctl_before_etcd(tmp_path)
    out = tmp_path / "t"
    record(out, cmd)
    trace = schema.load(out)
    mine = descendants(trace, int(trace.meta["command_pid"]))
    result = analyze_json(trace)
    ws = [w for w in _mine(result, mine, "listener", port) if w["waiter"]["comm"] == "etcdctl"]
    assert len(ws) == 1, result["waits"]
    (w,) = ws
    assert w["target"]["comm"] == "etcd"
    assert w["attempts"] >= 2 and w["outcomes"].get("refused", 0) >= 1
    assert w["first_attempt_ns"] < w["ready_ns"] <= w["first_ok_ns"]
    assert w["lag_ns"] == w["first_ok_ns"] - w["ready_ns"]
    assert "healthy" in (tmp_path / "health.txt").read_text()
