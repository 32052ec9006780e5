"""Context recorded by `k3sprof record` on the BPF clock: the command's output as log rows,
netlink changes, and cgroups born during the trace named for the events inside them."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest

from tests.integration.recording import descendants, record, record_in_unit_cgroup, rows_of
from tracer import schema

pytestmark = pytest.mark.bpf


def test_command_output_becomes_parsed_log_rows_between_the_events(tmp_path: Path) -> None:
    # GIVEN a command that prints a k3s-style logrus line between two execs
    script = ("/bin/true; echo 'time=\"2025-03-21T10:11:12Z\" level=info msg=\"k3s is up and "
              "running\"'; sleep 0.2; /bin/true")
    out = tmp_path / "t"
    p = record(out, ["/bin/sh", "-c", script])
    trace = schema.load(out)
    # THEN it reached the terminal unchanged, and the log table has it parsed, stamped on
    # arrival between the two execs
    assert 'msg="k3s is up and running"' in p.stdout
    log = [r for r in trace.table("log").to_pylist() if r["message"] == "k3s is up and running"]
    assert len(log) == 1 and log[0]["level"] == "info" and log[0]["source"] == "stdout"
    pids = descendants(trace, trace.meta["command_pid"])
    trues = sorted(r["ts_ns"] for r in rows_of(trace, "process", pids, kind="exec")
                   if r["filename"] == "/bin/true")
    assert trues[0] < log[0]["ts_ns"] < trues[1]


def test_netlink_changes_are_recorded_in_order(tmp_path: Path) -> None:
    name = f"kpt{uuid.uuid4().hex[:6]}"
    out = tmp_path / "t"
    record(out, ["/bin/sh", "-c", f"ip link add {name} type bridge && ip link set {name} up "
                 f"&& ip addr add 10.251.3.1/24 dev {name} && ip link del {name}"])
    rows = [r for r in schema.load(out).table("netlink").to_pylist() if r["ifname"] == name]
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "link_new" and kinds[-1] == "link_del"
    assert "addr_new" in kinds and rows[0]["link_kind"] == "bridge"
    assert any(r["kind"] == "link_new" and r["state"] == "up" for r in rows)


def test_process_in_a_cgroup_born_during_the_trace_is_attributed(tmp_path: Path) -> None:
    # GIVEN a cgroup v2 directory created during the recording, named like a systemd unit,
    # and a process moved into it before it execs
    out = tmp_path / "t"
    made = record_in_unit_cgroup(out)
    if made is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    unit, _cg = made
    trace = schema.load(out)
    cgt = trace.table("cgroup")
    born = cgt.filter(pc.match_substring(cgt["path"], unit)).to_pylist()
    # THEN the mkdir was seen with the id the BPF events carry, and the unit derived
    assert len(born) == 1 and born[0]["unit"] == unit
    sleeps = [r for r in rows_of(trace, "process", descendants(trace,
              trace.meta["command_pid"]), kind="exec") if r["filename"] == "/bin/sleep"]
    assert len(sleeps) == 1 and sleeps[0]["cgroup_id"] == born[0]["cgroup_id"]


def test_recorded_command_runs_at_its_own_priority_not_the_recorders(tmp_path: Path) -> None:
    # the collector raises its own priority so draining is not starved; CMD must not inherit it
    out = tmp_path / "t"
    p = record(out, ["/usr/bin/nice"])
    assert p.stdout.strip() == str(os.getpriority(os.PRIO_PROCESS, 0))
    rows = [r["message"] for r in schema.load(out).table("log").to_pylist()
            if r["source"] == "stdout"]
    assert rows == [p.stdout.strip()]


def test_command_runs_as_the_user_given(tmp_path: Path) -> None:
    # GIVEN --user nobody: the recorder stays root, the command does not
    out = tmp_path / "t"
    p = record(out, ["/usr/bin/id", "-u"], "--user", "nobody")
    assert p.stdout.strip() == "65534"
    trace = schema.load(out)
    (ex,) = rows_of(trace, "process", {trace.meta["command_pid"]}, kind="exec")
    assert ex["uid"] == 65534 and ex["filename"] == "/usr/bin/id"
