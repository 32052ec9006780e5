"""cgroup path -> unit / pod / container on real k3s and kubelet path shapes; mounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracer import schema
from tracer.context import ContextSource, cgroups

UID = "8f9c4a5e-1b2d-4c3e-9f0a-7b6c5d4e3f21"
CID = "3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123456789abcdef012"


@pytest.mark.parametrize(
    ("path", "unit", "pod", "container"),
    [
        # k3s.service and everything it runs directly (ExecStartPre modprobe, containerd)
        ("/system.slice/k3s.service", "k3s.service", None, None),
        ("/system.slice/k3s-agent.service", "k3s-agent.service", None, None),
        ("/system.slice", "system.slice", None, None),
        ("/", None, None, None),
        # systemd-run transient scopes, user sessions
        ("/system.slice/run-r1b2c3.scope", "run-r1b2c3.scope", None, None),
        ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", None, None),
        # a unit with a delegated subtree (containerd under k3s with Delegate=yes)
        ("/system.slice/k3s.service/init", "k3s.service", None, None),
        # systemd name escaping: \x2d is '-'
        ("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service", None, None),
        ("/system.slice/var-lib-rancher-k3s\\x2ddata.mount.scope",
         "var-lib-rancher-k3s-data.mount.scope", None, None),
        # kubelet, systemd cgroup driver (k3s on cgroup v2 hosts)
        (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}"
         f".slice/cri-containerd-{CID}.scope", f"cri-containerd-{CID}.scope", UID, CID),
        (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
         f"{UID.replace('-', '_')}.slice", f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice",
         UID, None),
        # guaranteed QoS pods sit directly under kubepods.slice
        (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope",
         f"cri-containerd-{CID}.scope", UID, CID),
        # kubelet, cgroupfs driver (k3s default on cgroup v1 hosts)
        (f"/kubepods/burstable/pod{UID}/{CID}", None, UID, CID),
        (f"/kubepods/pod{UID}/{CID}", None, UID, CID),
        (f"/kubepods/besteffort/pod{UID}", None, UID, None),
        # k3s run in a container (k3d): kubepods nested below the container's own cgroup
        (f"/docker/{CID}/kubepods/burstable/pod{UID}/{'f' * 64}", None, UID, "f" * 64),
        # cri-o and docker scopes
        (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{CID}.scope",
         f"crio-{CID}.scope", UID, CID),
        # v1 rows carry their hierarchy as in /proc/PID/cgroup
        ("name=systemd:/system.slice/k3s.service", "k3s.service", None, None),
        # "pod..." outside kubepods is not a pod
        (f"/system.slice/pod{UID}", "system.slice", None, None),
    ],
)
def test_describe(path: str, unit: str | None, pod: str | None, container: str | None) -> None:
    assert cgroups.describe(path) == {"unit": unit, "pod_uid": pod, "container_id": container}


def test_rows_for_is_one_schema_row() -> None:
    t = cgroups.rows_for(4242, "/system.slice/k3s.service", 7)
    assert t.schema.equals(schema.CGROUP)
    assert t.to_pylist() == [{"ts_ns": 7, "cgroup_id": 4242, "path": "/system.slice/k3s.service",
                              "unit": "k3s.service", "pod_uid": None, "container_id": None}]


HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PURE_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
LEGACY_V1 = """\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
35 31 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct
"""
# inside a container with a cgroup namespace bind mount: the mount's root is not "/"
BIND = r"50 40 0:26 /docker/abc /sys/fs/cgroup ro - cgroup2 cgroup2 rw" + "\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HYBRID, [("/sys/fs/cgroup/systemd", "/", "name=systemd"),
                  ("/sys/fs/cgroup/unified", "/", "")]),
        (PURE_V2, [("/sys/fs/cgroup", "/", "")]),
        (LEGACY_V1, [("/sys/fs/cgroup/systemd", "/", "name=systemd")]),
        (BIND, [("/sys/fs/cgroup", "/docker/abc", "")]),
    ],
)
def test_hierarchies_from_mountinfo(tmp_path: Path, text: str,
                                    expected: list[tuple[str, str, str]]) -> None:
    f = tmp_path / "mountinfo"
    f.write_text(text)
    got = [(str(h.mount), h.root, h.name) for h in cgroups.hierarchies(str(f))]
    assert got == expected


def test_snapshot_walks_a_tree_and_ids_are_inodes(tmp_path: Path) -> None:
    # a plain directory tree stands in for cgroupfs: the walk and the inode rule are the same
    v2 = tmp_path / "v2"
    unit = v2 / "system.slice" / "k3s.service"
    unit.mkdir(parents=True)
    v1 = tmp_path / "v1"
    (v1 / "system.slice" / "k3s.service").mkdir(parents=True)
    mounts = [cgroups.Hierarchy(v1, "/", "name=systemd"), cgroups.Hierarchy(v2, "/", "")]
    t = cgroups.snapshot(5, mounts=mounts)  # v2 present: v1 left out by default
    rows = {r["path"]: r for r in t.to_pylist()}
    assert set(rows) == {"/", "/system.slice", "/system.slice/k3s.service"}
    assert rows["/system.slice/k3s.service"]["cgroup_id"] == os.stat(unit).st_ino
    assert rows["/system.slice/k3s.service"]["unit"] == "k3s.service"
    assert rows["/"]["cgroup_id"] == os.stat(v2).st_ino
    assert set(t["ts_ns"].to_pylist()) == {5}
    both = cgroups.snapshot(5, mounts=mounts, v1=True)["path"].to_pylist()
    assert "name=systemd:/system.slice/k3s.service" in both
    only_v1 = cgroups.snapshot(5, mounts=mounts[:1])["path"].to_pylist()  # legacy host
    assert sorted(only_v1) == ["name=systemd:/", "name=systemd:/system.slice",
                               "name=systemd:/system.slice/k3s.service"]


def test_snapshot_under_a_bind_mounted_root(tmp_path: Path) -> None:
    (tmp_path / "kubepods").mkdir()
    t = cgroups.snapshot(1, mounts=[cgroups.Hierarchy(tmp_path, "/docker/abc", "")])
    assert sorted(t["path"].to_pylist()) == ["/docker/abc", "/docker/abc/kubepods"]


def test_proc_cgroup_of_this_process() -> None:
    path = cgroups.proc_cgroup(os.getpid())
    text = Path(f"/proc/{os.getpid()}/cgroup").read_text()
    v2 = next(line.split(":", 2)[2] for line in text.splitlines() if line.startswith("0::"))
    if any(not h.name for h in cgroups.hierarchies()):
        assert path == v2
    assert cgroups.proc_cgroup(2**22 + 1) is None  # no such pid


def test_cgroup_source_reports_new_cgroups_once(tmp_path: Path) -> None:
    src = cgroups.CgroupSource()
    assert isinstance(src, ContextSource)
    src._mounts = [cgroups.Hierarchy(tmp_path, "/", "")]
    src.start()
    first = src.drain()
    assert first is not None and first["path"].to_pylist() == ["/"]
    assert src.drain() is None
    (tmp_path / "k3s.service").mkdir()
    t = src.drain()
    assert t is not None and t["path"].to_pylist() == ["/k3s.service"]
    assert t["unit"].to_pylist() == ["k3s.service"]
    src.stop()
    assert src.drain() is None
