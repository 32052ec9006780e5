"""A real boot with systemd as PID 1: `k3sprof boot install` before a (stand-in) k3s.service.

Two boots of one image (tests/kernels/systemd_vm.py). After each, the host copies the runs and
the facts the check unit saved (systemctl show, k3s's journal) out of the image.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow.compute as pc
import pytest

from tests.kernels import systemd_vm as sv
from tests.kernels import vm
from tests.kernels.conftest import OUT, Fleet
from tests.kernels.systemd_vm import END, Boot, SystemdVM
from tracer import schema

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def systemd_vm(fleet: Fleet) -> SystemdVM:
    """The two boots, run by the session's fleet alongside the kernel-matrix VMs."""
    assert fleet.systemd is not None, "the fleet did not start the systemd VM"
    return fleet.systemd.result()


def _console_tail(b: Boot) -> str:
    return f"console of boot {b.n} (tail):\n{vm.tail(b.console, 60)}"


def test_both_boots_ran_systemd_and_the_check_unit(systemd_vm: SystemdVM) -> None:
    for b in systemd_vm.boots:
        assert b.rc == 0, f"qemu exited {b.rc} after {b.seconds:.0f}s\n{_console_tail(b)}"
        assert b.boot_id, f"the check unit saved nothing in boot {b.n}\n{_console_tail(b)}"
        assert re.search(r"systemd\[1\]: systemd \S+ running in system mode", b.console.read_text(
            errors="replace")), "PID 1 was not systemd"
    assert len({b.boot_id for b in systemd_vm.boots}) == 2


def _k3s_exec(trace: schema.Trace, pid: int) -> dict[str, Any]:
    proc = trace.table("process")
    rows = proc.filter(pc.and_(pc.equal(proc["kind"], "exec"), pc.equal(proc["pid"], pid)))
    execs = [r for r in rows.to_pylist() if r["filename"] == "/usr/local/bin/k3s"]
    assert execs, f"no exec of /usr/local/bin/k3s by pid {pid} in the trace"
    return dict(execs[0])


@pytest.mark.parametrize("n", [1, 2])
def test_recorder_live_before_k3s_first_exec(systemd_vm: SystemdVM, n: int) -> None:
    b = systemd_vm.boots[n - 1]
    run = b.this_run()
    trace = schema.load(run / "trace")
    k3s, rec = b.show("k3s.service"), b.show("k3sprof-boot.service")
    pid = int(k3s["ExecMainPID"])
    ex = _k3s_exec(trace, pid)
    # the probes were live before k3s.service's first exec, and that exec is in the trace
    assert trace.meta["start_ns"] < ex["ts_ns"]
    # systemd held k3s back until READY=1 (sent by the recorder once its probes were live)
    ready_us = int(rec["ActiveEnterTimestampMonotonic"])
    k3s_start_us = int(k3s["ExecMainStartTimestampMonotonic"])
    assert ready_us > 0 and k3s_start_us >= ready_us
    assert trace.meta["start_ns"] <= ready_us * 1000
    assert k3s["ActiveState"] == "active" and k3s["NRestarts"] == "0"


@pytest.mark.parametrize("n", [1, 2])
def test_k3s_journal_lines_in_the_trace_on_the_same_clock(systemd_vm: SystemdVM, n: int) -> None:
    b = systemd_vm.boots[n - 1]
    trace = schema.load(b.this_run() / "trace")
    pid = int(b.show("k3s.service")["ExecMainPID"])
    log = trace.table("log")
    unit_rows = [r for r in log.to_pylist() if r["source"] == "journal:k3s.service"]
    # the unit's journal: k3s's own lines, and systemd's (pid 1) "Starting/Started k3s.service"
    assert {r["pid"] for r in unit_rows} == {pid, 1}, unit_rows
    mine = [r for r in unit_rows if r["pid"] == pid]
    said = {m.group(1): (r, int(m.group(2))) for r in mine
            if (m := re.match(r"(.*) monotonic_ns=(\d+)$", r["message"] or ""))}
    assert {"Starting k3s v0.0.0-standin (not k3s)", "Kube API server is now running on :6443",
            "k3s is up and running"} <= set(said), [r["message"] for r in mine]
    for row, own_ns in said.values():
        # journald stamps on arrival: never before the program's own clock read, and soon
        assert row["time_from"] == "journal-monotonic"
        assert own_ns <= row["ts_ns"] < own_ns + 2_000_000_000, (row, own_ns)
    # the listen on 6443 the trace saw lies between the lines that bracket it
    sock = trace.table("socket")
    listens = [r for r in sock.to_pylist() if r["kind"] == "listen" and r["pid"] == pid
               and r["port"] == 6443]
    assert len(listens) == 1
    assert (said["Starting k3s v0.0.0-standin (not k3s)"][1] < listens[0]["ts_ns"]
            < said["Kube API server is now running on :6443"][1])


@pytest.mark.parametrize("n", [1, 2])
def test_run_directory_holds_analysis_and_report(systemd_vm: SystemdVM, n: int) -> None:
    b = systemd_vm.boots[n - 1]
    run = b.this_run()
    meta = json.loads((run / "run.json").read_text())
    assert meta["boot_id"] == b.boot_id
    assert (run / "report.html").stat().st_size > 10_000
    assert "plotly" in (run / "report.html").read_text(errors="replace")
    a = json.loads((run / "analysis.json").read_text())
    # boot run analyzes to the end installed with `boot install --end` (the stand-in k3s logs
    # "k3s is up and running"), not to the k3s profile's own end (the kubelet's listen:10250,
    # which the stand-in never reaches): the recording and the critical path end there
    assert a["end_reached"] is True and a["end_by"] == END, a["end_by"]
    logged = schema.load(run / "trace").table("log").to_pylist()
    up = [r["ts_ns"] for r in logged if "k3s is up and running" in (r["message"] or "")]
    assert up and a["end_ns"] == min(up)
    pid = int(b.show("k3s.service")["ExecMainPID"])
    assert any(p["pid"] == pid for p in a["processes"]), "k3s's process not in the analysis"


def test_rotation_across_two_boots_keeps_the_newest(systemd_vm: SystemdVM) -> None:
    b1, b2 = systemd_vm.boots
    first = b1.this_run()
    assert first.name.startswith("0001-")
    # --keep 1: after the second boot only its own run is left, numbered after the first
    assert [p.name for p in b2.run_dirs()] == [b2.this_run().name]
    assert b2.this_run().name.startswith("0002-")
    assert (b2.check / "runs.txt").read_text().split() == [b2.this_run().name]


def k3s_delay_s(b: Boot) -> tuple[float, float]:
    """(how long the unit held k3s.service back, the recorder's READY time after its start):
    held = k3s's start - the latest READY/active moment of k3s's OTHER After= dependencies
    (when k3s.service could have started without k3sprof-boot)."""
    k3s, rec = b.show("k3s.service"), b.show("k3sprof-boot.service")
    others = []
    for block in (b.check / "k3s-after.show").read_text().split("\n\n"):
        p = sv.parse_show(block)
        if p.get("Id") and p["Id"] != "k3sprof-boot.service" and p.get("ActiveState") == "active":
            others.append(int(p.get("ActiveEnterTimestampMonotonic") or 0))
    start = int(k3s["ExecMainStartTimestampMonotonic"])
    held = (start - max(others)) / 1e6 if others else float("nan")
    attach = (int(rec["ActiveEnterTimestampMonotonic"])
              - int(rec["InactiveExitTimestampMonotonic"])) / 1e6
    return held, attach


def test_delay_of_k3s_service_is_measured(systemd_vm: SystemdVM) -> None:
    rows = []
    for b in systemd_vm.boots:
        held, attach = k3s_delay_s(b)
        # systemd semantics: k3s starts after every After= dependency is up
        assert held >= 0 and attach > 0, (held, attach)
        rows.append({"boot": b.n, "k3s_held_s": round(held, 2),
                     "unit_start_to_ready_s": round(attach, 2), "qemu_s": round(b.seconds, 1)})
    (OUT / "systemd").mkdir(parents=True, exist_ok=True)
    (OUT / "systemd" / "delay.json").write_text(json.dumps(
        {"image_s": round(systemd_vm.image_s, 1), "boots": rows}, indent=1))
    print("\n" + "\n".join(f"boot {r['boot']}: k3s.service held {r['k3s_held_s']} s; "
                           f"k3sprof-boot start -> READY {r['unit_start_to_ready_s']} s"
                           for r in rows))


def _sockd_wait(b: Boot) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """(the daemon's truth, the wait on 127.0.0.1:6444 whose target is the daemon or None,
    every listener/poll wait on 127.0.0.1:6444) of one boot's analysis."""
    truth = json.loads((b.check / "sockd.json").read_text())
    a = json.loads((b.this_run() / "analysis.json").read_text())
    waits = [w for w in a["waits"] if w.get("endpoint") == "127.0.0.1:6444"
             and w["kind"] in ("poll", "listener")]
    mine = [w for w in waits if w["target"] and w["target"]["pid"] == truth["pid"]]
    if not mine:
        return truth, None, waits
    w = mine[0]
    i = a["waits"].index(w)
    w = dict(w, path=[s for s in a["critical_path"] if s.get("wait") == i
                      and s["kind"] in ("wait:poll", "wait:poll-lag", "wait:listener")])
    return truth, w, waits


def test_a_socket_activated_daemon_is_the_waits_target_with_its_states(
        systemd_vm: SystemdVM) -> None:
    """Issue 29's shape 1 under real systemd: the stand-in k3s polls 127.0.0.1:6444, which
    systemd listens on (k3sprof-sockd.socket); the daemon systemd starts on the first
    connection accepts on the socket it was given. A wait on 6444 never names systemd (the
    listener) as its target; one that names the daemon (its own truth gives its pid) has
    wait:poll segments on the path that carry the daemon's states: its CPU at least 90 % of
    the job's thread CPU and at most 110 % of the whole daemon's CPU at the job's end (its
    interpreter start is on the wait too, truthfully: the first connection waited in the
    backlog while it started).

    At least one of the two boots must have that wait, not both: under TCG with the matrix's
    other VMs on the same cores the guest's timers fire up to ~100 ms late (2026-12-07 19:14
    UTC, boot 1 of a local matrix run with other test suites on the host: the poller's 250 ms
    ticks came 232-392 ms apart), and a retry loop that irregular is not told from random
    connects by timing (docs/analyze.md, "Poll cadence"): that boot had no wait on 6444 at
    all, its stretch read as the stand-in's own run. Each boot's finding is printed."""
    found = []
    for b in systemd_vm.boots:
        truth, w, waits = _sockd_wait(b)
        assert all(x["target"] is None or x["target"]["pid"] != 1 for x in waits), waits
        print(f"boot {b.n}: " + ("no wait on 127.0.0.1:6444 names the daemon: "
                                 f"{[(x['kind'], x['attempts'], x['target']) for x in waits]}"
                                 if w is None else
                                 f"{w['kind']} wait, {w['attempts']} attempts every "
                                 f"{w['interval_ns'] / 1e6:.0f} ms, target the daemon"))
        if w is None:
            continue
        segs = w["path"]
        assert segs, (b.n, w)
        with_states = [s for s in segs if s.get("states") and s.get("states_of", {}) and
                       s["states_of"].get("pid") == truth["pid"]]
        assert with_states, (b.n, segs)
        cpu = sum(s["states"].get("cpu", 0) for s in with_states)
        assert 0.9 * truth["cpu_ns"] <= cpu <= 1.1 * truth["proc_cpu_ns"], (b.n, cpu, truth, segs)
        found.append(b.n)
    assert found, "in neither boot did a wait on 127.0.0.1:6444 name the socket-activated daemon"
