"""A cgroup made under the real cgroupfs is found with its id (= what BPF reports) and unit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracer.context import cgroups

pytestmark = pytest.mark.root


def _mount(v1: bool) -> cgroups.Hierarchy:
    for h in cgroups.hierarchies():
        if bool(h.name) == v1:
            return h
    pytest.skip("no cgroup v1 name=systemd hierarchy here" if v1 else "no cgroup v2 mount here")


@pytest.fixture
def unit_cgroup() -> Iterator[tuple[Path, str, str]]:
    """/<mount>/k3sprof-test-<id>.slice/k3sprof-test-<id>.service, removed afterwards."""
    h = _mount(v1=False)
    tag = uuid.uuid4().hex[:8]
    slice_dir = h.mount / f"k3sprof-test-{tag}.slice"
    unit_dir = slice_dir / f"k3sprof-test-{tag}.service"
    unit_dir.mkdir(parents=True)
    try:
        yield unit_dir, h.path_of(unit_dir), f"k3sprof-test-{tag}.service"
    finally:
        for d in (unit_dir, slice_dir):
            for _ in range(50):  # a process that just exited may still be charged for a moment
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def test_snapshot_finds_a_new_unit_cgroup(unit_cgroup: tuple[Path, str, str]) -> None:
    unit_dir, path, unit = unit_cgroup
    t = cgroups.snapshot(time.monotonic_ns())
    rows = [r for r in t.to_pylist() if r["path"] == path]
    assert len(rows) == 1
    assert rows[0]["cgroup_id"] == os.stat(unit_dir).st_ino
    assert rows[0]["unit"] == unit and rows[0]["pod_uid"] is None


def test_a_process_in_the_unit_is_attributed(unit_cgroup: tuple[Path, str, str]) -> None:
    unit_dir, path, unit = unit_cgroup
    # a real process started in the unit's cgroup, as systemd would start a service's process
    child = subprocess.Popen(
        ["sh", "-c", f"echo $$ > {unit_dir}/cgroup.procs && exec sleep 30"],
    )
    try:
        for _ in range(100):
            if (unit_dir / "cgroup.procs").read_text().split() == [str(child.pid)]:
                break
            time.sleep(0.02)
        got = cgroups.proc_cgroup(child.pid)
        assert got == path
        assert cgroups.describe(got)["unit"] == unit
    finally:
        child.kill()
        child.wait()


@pytest.mark.bpf
def test_inode_is_the_bpf_cgroup_id(unit_cgroup: tuple[Path, str, str]) -> None:
    """Ground truth from the kernel: bpf_get_current_cgroup_id() of a task in the cgroup."""
    from bcc import BPF

    unit_dir, path, _ = unit_cgroup
    prog = b"""
    BPF_HASH(ids, u32, u64);
    TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
        u32 pid = bpf_get_current_pid_tgid() >> 32;
        u64 id = bpf_get_current_cgroup_id();
        ids.update(&pid, &id);
        return 0;
    }
    """
    b = BPF(text=prog)
    try:
        code = "import os, sys; sys.stdin.readline(); os.getppid()"
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
        (unit_dir / "cgroup.procs").write_text(str(child.pid))
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        child.wait(10)
        seen = {k.value: v.value for k, v in b[b"ids"].items()}
    finally:
        b.cleanup()
    assert child.pid in seen
    rows = {r["cgroup_id"]: r["path"] for r in cgroups.snapshot(0).to_pylist()}
    assert rows.get(seen[child.pid]) == path


def test_v1_named_systemd_hierarchy() -> None:
    h = _mount(v1=True)
    d = h.mount / f"k3sprof-v1-{uuid.uuid4().hex[:8]}.service"
    d.mkdir()
    try:
        t = cgroups.snapshot(1, v1=True)
        rows = [r for r in t.to_pylist() if r["path"] == f"name=systemd:/{d.name}"]
        assert len(rows) == 1
        assert rows[0]["cgroup_id"] == os.stat(d).st_ino and rows[0]["unit"] == d.name
    finally:
        d.rmdir()


def test_cgroup_source_sees_a_cgroup_born_while_running() -> None:
    h = _mount(v1=False)
    src = cgroups.CgroupSource()
    src.start()
    assert src.drain() is not None  # the cgroups at start
    d = h.mount / f"k3sprof-born-{uuid.uuid4().hex[:8]}.scope"
    d.mkdir()
    try:
        t = src.drain()
    finally:
        d.rmdir()
        src.stop()
    assert t is not None
    assert [r["unit"] for r in t.to_pylist() if r["path"] == h.path_of(d)] == [d.name]
