"""A k3s-SHAPED real recording (workloads/k3s_like.py: k3s v1.32.4 sequencing, exec'd through
symlinks named k3s / k3s-server / containerd, real modprobe execs, the shared /readyz poller on
fresh TCP connections) analysed with the k3s profile extended to the test's free ports.

Every check compares the analyzer with the workload's own truth (time.monotonic_ns(), the
trace's clock) or with the trace's own raw rows, never with the analyzer itself.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import K3SPROF, ROOT, WORKLOADS, free_port, record
from tracer import schema

pytestmark = pytest.mark.bpf

MS = 1_000_000
PHASE_CTRD = "containerd start -> first API readiness check"
PHASE_API = "API server start -> ready"
PHASE_SCHED = "scheduler start latency (k3s exec -> :10259 listen)"
PHASE_KCM = "controller-manager start latency (k3s exec -> :10257 listen)"
#: the workload stamps time.monotonic_ns() just before its connect(); with its other threads
#: holding the GIL (Popen of containerd, the HTTP server) the syscall can come ~1 ms later
STAMP_SLACK = 5 * MS
#: the log line arrives through a pipe and the recorder's reader thread: stamped a bit late
LOG_ARRIVAL_SLACK = 15 * MS


def _ports() -> dict[str, int]:
    names = ("6443", "6444", "10250", "10248", "10259", "10257")
    for _ in range(20):
        ports = {n: free_port() for n in names}
        if len(set(ports.values())) == len(names):
            return ports
    raise AssertionError("no distinct free ports")


class Run:
    """One recorded k3s-shaped start: its trace, truth, profile and `analyze --json`."""

    def __init__(self, base: Path, interval: float, ports: dict[str, int]) -> None:
        self.dir = base
        work = base / "work"
        work.mkdir(parents=True)
        for name in ("k3s", "k3s-server", "containerd"):
            os.symlink("/usr/bin/python3", work / name)
        self.truth_file = base / "truth.json"
        self.trace = base / f"k3s-{interval}.trace"
        self.profile = base / "k3s-test.json"
        self.profile.write_text(json.dumps({
            "name": "k3s-test-ports", "extends": "k3s",
            "ports": ports,
            "paths": {"/run/k3s/containerd/containerd.sock": str(work / "containerd.sock")},
        }))
        record(self.trace, [str(work / "k3s"), str(WORKLOADS / "k3s_like.py"), "wrapper",
                            "--workdir", str(work), "--interval", str(interval),
                            "--ports", json.dumps(ports), "--truth", str(self.truth_file)])
        self.truth: dict[str, Any] = json.loads(self.truth_file.read_text())
        self.ports = ports
        self.result = self.cli("analyze", "--json")

    def cli(self, cmd: str, *extra: str) -> dict[str, Any]:
        p = subprocess.run([*K3SPROF, cmd, str(self.trace), *extra, "--profile",
                            str(self.profile)], capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)  # type: ignore[no-any-return]

    def phase(self, name: str) -> dict[str, Any]:
        phs: list[dict[str, Any]] = [p for p in self.result["phases"] if p["name"] == name]
        assert len(phs) == 1 and phs[0]["duration_ns"] is not None, phs
        return phs[0]

    def poll_connects(self) -> list[int]:
        """Trace times of k3s's readiness connects: its :6443 connects after the cert fetches."""
        st = schema.load(self.trace).table("socket").to_pylist()
        mine = sorted(r["ts_ns"] for r in st if r["kind"] == "connect"
                      and r["pid"] == self.truth["pid"] and r["port"] == self.ports["6443"])
        assert len(mine) == len(self.truth["cert_fetches"]) + len(self.truth["polls"])
        return mine[len(self.truth["cert_fetches"]):]

    def poll_wait(self) -> dict[str, Any]:
        ws: list[dict[str, Any]] = [w for w in self.result["waits"] if w["kind"] == "poll"
              and w["endpoint"] == f"127.0.0.1:{self.ports['6443']}"]
        assert len(ws) == 1, self.result["waits"]
        return ws[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    ports = _ports()  # one port set, like one k3s configuration started twice
    base = tmp_path_factory.mktemp("k3s-shape")
    return Run(base / "fast", 0.2, ports), Run(base / "slow", 0.4, ports)


def within(value: int, window: list[int], slack: int = 0) -> bool:
    return window[0] - slack <= value <= window[1] + slack


def test_names_and_exec_chain_are_k3s_like(runs: tuple[Run, Run]) -> None:
    r = runs[0]
    (k3s,) = [p for p in r.result["processes"] if p["pid"] == r.truth["pid"]]
    assert [os.path.basename(e["filename"]) for e in k3s["execs"]] == ["k3s", "k3s-server"]
    assert k3s["comm"] == "k3s-server" and k3s["component"] == "k3s"
    (ctrd,) = [p for p in r.result["processes"] if p["pid"] == r.truth["containerd"]["pid"]]
    assert ctrd["comm"] == "containerd" and ctrd["parent_key"] == k3s["key"]
    helpers = [p for p in r.result["processes"] if p["comm"] == "modprobe"]
    assert len(helpers) == 2 and all(p["exit_code"] == 1 for p in helpers)
    assert r.result["trace"]["k3s_version"] == "v1.32.4+k3s1"
    assert r.result["trace"]["k3s_commit"] == "6b330558"


def test_phases_match_the_workloads_truth(runs: tuple[Run, Run]) -> None:
    for r in runs:
        t = r.truth
        # containerd start (its exec, between the parent's Popen and the child's first line) ->
        # the first readiness poll after it
        ph = r.phase(PHASE_CTRD)
        assert ph["start_event"]["comm"] == "containerd"
        assert t["containerd_popen_ns"] <= ph["start_ns"] <= t["containerd"]["start_ns"]
        # which poll came first after the exec is decided by the connect syscalls themselves
        # (the workload's stamp precedes its connect by a few µs): the raw trace rows
        polls = r.poll_connects()
        assert len(polls) == len(t["polls"])
        assert all(0 <= c - p["t"] < STAMP_SLACK for c, p in zip(polls, t["polls"]))
        assert ph["end_ns"] == min(c for c in polls if c >= ph["start_ns"])
        # API server start (:6444 listen, not the earlier "Running kube-apiserver" line) -> the
        # end of the readiness poll loop (the first 200)
        ph = r.phase(PHASE_API)
        assert within(ph["start_ns"], t["apiserver_listen_ns"], 1 * MS)
        ok = [p for p in t["polls"] if p["code"] == 200]
        assert len(ok) == 1 and ok[0] is t["polls"][-1]
        assert ph["end_ns"] == polls[-1] and 0 <= ph["end_ns"] - ok[0]["t"] < STAMP_SLACK
        # scheduler / controller-manager: k3s exec -> their listens
        for name, port in ((PHASE_SCHED, "10259"), (PHASE_KCM, "10257")):
            ph = r.phase(name)
            assert ph["start_event"]["spec"] == "exec:k3s"
            assert within(ph["end_ns"], t["listen_ns"][port], 1 * MS)


def test_readiness_poll_found_with_cadence_and_log_evidence(runs: tuple[Run, Run]) -> None:
    for r in runs:
        t = r.truth
        w = r.poll_wait()
        polls = [p["t"] for p in t["polls"]]
        rows = r.poll_connects()
        assert w["waiter"]["pid"] == t["pid"] and w["target"]["pid"] == t["pid"]
        # exactly the poll loop: the irregular certificate fetches before it are not part of it
        assert w["attempts"] == len(polls) >= 4
        assert w["first_attempt_ns"] == rows[0] and w["ended_ns"] == rows[-1]
        assert 0 <= w["ended_ns"] - polls[-1] < STAMP_SLACK
        gaps = [b - a for a, b in itertools.pairwise(polls)]
        assert abs(w["interval_ns"] - statistics.median(gaps)) < 5 * MS
        assert abs(w["interval_ns"] - t["interval_ns"]) < 5 * MS
        assert w["outcomes"] == {"ok": len(polls)}  # TCP always fine: only HTTP said "not yet"
        # corroborated by k3s's own log lines, one per failed poll, attached as evidence
        trace = schema.load(r.trace)
        msgs = trace.table("log")["message"].to_pylist()
        lines = [msgs[i] for i in w["evidence"]["log"]]
        polling = [m for m in lines if m.startswith("Polling for API server readiness")]
        assert len(polling) == len(polls) - 1
        assert "Kube API server is now running" in lines
        # the ready moment from the apiserver's log line; the lag is what the interval cost
        assert 0 <= w["ready_ns"] - t["apiserver_ready_ns"] < LOG_ARRIVAL_SLACK
        assert abs(w["lag_ns"] - (polls[-1] - t["apiserver_ready_ns"])) < (
            LOG_ARRIVAL_SLACK + STAMP_SLACK)


def test_containerd_socket_wait(runs: tuple[Run, Run]) -> None:
    r = runs[0]
    sock = f"unix:{r.dir / 'work' / 'containerd.sock'}"
    (w,) = [w for w in r.result["waits"] if w["endpoint"] == sock]
    assert w["kind"] == "listener" and w["target"]["pid"] == r.truth["containerd"]["pid"]
    assert w["attempts"] == len(r.truth["cri_attempts"]) >= 3
    assert within(w["ready_ns"], r.truth["containerd"]["listen_ns"], 1 * MS)
    ok = r.truth["cri_attempts"][-1]
    assert ok["ok"] and 0 <= w["first_ok_ns"] - ok["t"] < STAMP_SLACK


def test_critical_path_ends_at_the_last_listen_and_holds_the_poll_lag(
    runs: tuple[Run, Run],
) -> None:
    for r in runs:
        res, t = r.result, r.truth
        last = max(t["listen_ns"], key=lambda p: t["listen_ns"][p][0])
        assert last == "10259"  # the scheduler starts last (after "untainted node")
        assert res["end_reached"] and "listen:" in res["end_by"]
        assert within(res["end_ns"], t["listen_ns"][last], 1 * MS)
        segs = res["critical_path"]
        assert sum(s["duration_ns"] for s in segs) == res["total_ns"] == res["end_ns"] - res[
            "start_ns"]
        assert all(a["end_ns"] == b["start_ns"] for a, b in itertools.pairwise(segs))
        w = r.poll_wait()
        lag = [s for s in segs if s["kind"] == "wait:poll-lag" and s["pid"] == t["pid"]
               and s["end_ns"] == w["ended_ns"]]
        assert len(lag) == 1 and lag[0]["start_ns"] == w["ready_ns"]
        # containerd's startup is on the path (v1.32.4: the apiserver waits for it)
        assert any(s["pid"] == t["containerd"]["pid"] for s in segs)


def test_report_and_compare_show_the_api_ready_difference(
    runs: tuple[Run, Run], tmp_path: Path
) -> None:
    fast, slow = runs
    html = tmp_path / "fast.html"
    p = subprocess.run([*K3SPROF, "report", str(fast.trace), "-o", str(html), "--profile",
                        str(fast.profile)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    data = json.loads(re.search(r'id="k3sprof-data">(.*?)</script>', html.read_text(),
                                re.S).group(1))  # type: ignore[union-attr]
    assert ["k3s version", "v1.32.4+k3s1 (6b330558)"] in data["facts"]
    (row,) = [r for r in data["tables"]["phases"]["rows"] if r[0] == PHASE_API]
    assert row[3] != "–"  # measured, not absent

    p = subprocess.run([*K3SPROF, "compare", str(fast.trace), str(slow.trace), "--json",
                        "--profile", str(fast.profile)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    cmp = json.loads(p.stdout)
    (api,) = [d for d in cmp["phases"] if d["name"] == PHASE_API]
    a, b = fast.phase(PHASE_API)["duration_ns"], slow.phase(PHASE_API)["duration_ns"]
    assert (api["a_ns"], api["b_ns"], api["delta_ns"]) == (a, b, b - a)
    # the slower poll costs more after readiness: ready is planted just after a failed poll
    lag_fast, lag_slow = fast.poll_wait()["lag_ns"], slow.poll_wait()["lag_ns"]
    assert lag_slow - lag_fast > 100 * MS
    (poll_lag,) = [d for d in cmp["composition"] if d["name"] == "wait:poll-lag"]
    assert poll_lag["delta_ns"] > 0
