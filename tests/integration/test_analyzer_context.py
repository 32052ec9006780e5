"""`k3sprof analyze` on REAL recordings: network milestones at the netlink rows' times, and
processes grouped by the systemd-unit-named cgroup they ran in."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from tests.integration.recording import (
    K3SPROF,
    ROOT,
    descendants,
    record,
    record_in_unit_cgroup,
    rows_of,
)
from tracer import schema

pytestmark = pytest.mark.bpf


def analyze_json(trace: Path, *opts: str) -> dict[str, Any]:
    p = subprocess.run([*K3SPROF, "analyze", "--json", str(trace), *opts],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def test_bridge_made_during_the_trace_gives_link_up_and_addr_milestones(tmp_path: Path) -> None:
    # GIVEN a recording of a command that creates a bridge, brings it up, addresses it, deletes it
    name = f"kp{uuid.uuid4().hex[:6]}"
    out = tmp_path / "t"
    try:
        record(out, ["/bin/sh", "-c", f"ip link add {name} type bridge && ip link set {name} up "
                     f"&& ip addr add 10.251.9.1/24 dev {name} && ip link del {name}"])
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)  # whatever happened
    rows = [r for r in schema.load(out).table("netlink").to_pylist() if r["ifname"] == name]
    up = min(r["ts_ns"] for r in rows if r["kind"] == "link_new" and r["state"] == "up")
    addr = min(r["ts_ns"] for r in rows if r["kind"] == "addr_new")
    # WHEN analyzed with the default (generic) profile
    result = analyze_json(out)
    # THEN its first "up" and first address are milestones at exactly those rows' times
    miles = {m["name"]: m for m in result["milestones"]}
    assert miles[f"{name} up"]["ts_ns"] == up and miles[f"{name} up"]["spec"] == f"link-up:{name}"
    assert miles[f"{name} has an address"]["ts_ns"] == addr
    # AND the analysis can end there
    ended = analyze_json(out, "--end", f"addr:{name}")
    assert ended["end_reached"] and ended["end_ns"] == addr


def test_processes_grouped_by_the_unit_named_cgroup_they_ran_in(tmp_path: Path) -> None:
    # GIVEN a process moved into a cgroup named like a systemd unit during the recording
    out = tmp_path / "t"
    made = record_in_unit_cgroup(out)
    if made is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    unit, _cg = made
    trace = schema.load(out)
    cgt = trace.table("cgroup")
    assert cgt.filter(pc.match_substring(cgt["path"], unit)).num_rows == 1
    (sleep,) = [r for r in rows_of(trace, "process", descendants(trace, trace.meta["command_pid"]),
                                   kind="exec") if r["filename"] == "/bin/sleep"]
    # WHEN analyzed
    result = analyze_json(out)
    # THEN the unit is a group holding the sleep: one process, two execs (its `sh -c`, exec'd
    # before it moved in, and the sleep: a process counts whole in the group it ended up in); the
    # sleep's process entry names the unit
    groups = {g["name"]: g for g in result["groups"]}
    g = groups[unit]
    assert (g["kind"], g["unit"], g["processes"], g["execs"]) == ("unit", unit, 1, 2)
    assert g["first_ns"] <= sleep["ts_ns"] <= g["last_ns"]
    (proc,) = [p for p in result["processes"] if p["pid"] == sleep["pid"]]
    assert proc["unit"] == unit and proc["group"] == unit
