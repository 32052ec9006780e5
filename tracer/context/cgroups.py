"""cgroup id -> path, systemd unit, pod and container, for the ``cgroup`` table.

Every BPF event carries ``bpf_get_current_cgroup_id()``: the id of the task's cgroup in the cgroup
v2 (unified) hierarchy, which is the inode number of that cgroup's directory in cgroupfs (kernfs
hands out one 64-bit id per node and uses it as the inode). So a walk of the v2 mount, taking each
directory's inode, resolves every id an event can carry. The v2 hierarchy is found wherever it is
mounted: ``/sys/fs/cgroup`` (pure v2) or ``/sys/fs/cgroup/unified`` (systemd's hybrid layout).

On a host without any v2 mount (legacy cgroup v1) every task sits in the v2 root, so events carry
the root's id; there the named ``name=systemd`` v1 hierarchy still tells units apart. Its rows
have paths prefixed ``name=systemd:`` (as in /proc/PID/cgroup) and ids that are inodes of THAT
hierarchy: never what BPF reports, join them by path (the snapshot table's ``cgroup`` column).

Paths are relative to the hierarchy root (``/system.slice/k3s.service``), as the kernel's
``cgroup:cgroup_mkdir`` tracepoint and /proc/PID/cgroup show them.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from tracer import schema

#: systemd unit types that can own a cgroup
_UNIT = re.compile(r"^(?:[^/]+)\.(?:service|scope|slice)$")
_UNIT_ESCAPES = re.compile(r"\\x([0-9a-fA-F]{2})")
# kubelet, systemd cgroup driver: kubepods[-<qos>]-pod<uid with _ for ->.slice
_POD_SYSTEMD = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-fA-F_]{36})\.slice$")
# kubelet, cgroupfs driver: /kubepods[/<qos>]/pod<uid>
_POD_CGROUPFS = re.compile(r"^pod([0-9a-fA-F-]{36})$")
# container runtimes (systemd driver): cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope
_CTR_SCOPE = re.compile(r"^(?:cri-containerd|crio|docker|containerd)-([0-9a-f]{64})\.scope$")
_CTR_ID = re.compile(r"^[0-9a-f]{64}$")
V1_SYSTEMD = "name=systemd"


def describe(path: str) -> dict[str, str | None]:
    """What a cgroup path means: {"unit", "pod_uid", "container_id"} (None where not known).

    unit is the innermost systemd unit on the path (``/system.slice/k3s.service`` ->
    ``k3s.service``; a pod's ``cri-containerd-<id>.scope``; ``session-3.scope``), so processes
    k3s itself runs (ExecStartPre modprobe, containerd) fall under ``k3s.service``.
    """
    if ":" in path and not path.startswith("/"):
        path = path.split(":", 1)[1]  # "name=systemd:/system.slice/x" (v1 rows)
    unit = pod = container = None
    for part in path.split("/"):
        if not part:
            continue
        if _UNIT.match(part):
            unit = _UNIT_ESCAPES.sub(lambda m: chr(int(m[1], 16)), part)
        m = _POD_SYSTEMD.match(part)
        if m:
            pod = m[1].replace("_", "-")
            continue
        m = _POD_CGROUPFS.match(part)
        if m and "kubepods" in path:
            pod = m[1]
            continue
        m = _CTR_SCOPE.match(part)
        if m:
            container = m[1]
        elif pod is not None and _CTR_ID.match(part):
            container = part
    return {"unit": unit, "pod_uid": pod, "container_id": container}


def rows_for(cgroup_id: int, path: str, ts_ns: int) -> pa.Table:
    """A one-row CGROUP table for a cgroup (e.g. one the ``cgroup_mkdir`` probe saw born)."""
    d = describe(path)
    return pa.Table.from_pydict(
        {
            "ts_ns": [ts_ns],
            "cgroup_id": [cgroup_id],
            "path": [path],
            "unit": [d["unit"]],
            "pod_uid": [d["pod_uid"]],
            "container_id": [d["container_id"]],
        },
        schema=schema.CGROUP,
    )


@dataclass(frozen=True)
class Hierarchy:
    mount: Path  # where it is mounted
    root: str  # the mount's root inside the hierarchy ("/" unless a cgroup namespace/bind mount)
    name: str  # "" for v2, else "name=systemd" etc.

    def path_of(self, directory: Path) -> str:
        rel = directory.relative_to(self.mount).as_posix()
        base = self.root.rstrip("/")
        p = f"{base}/{rel}" if rel != "." else (base or "/")
        return p if not self.name else f"{self.name}:{p}"


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """The cgroup v2 mount (first one) and the v1 ``name=systemd`` mount, as mounted here."""
    found: list[Hierarchy] = []
    seen_v2 = seen_v1 = False
    try:
        text = Path(mountinfo).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        fields = pre.split()
        rest = post.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        fstype, options = rest[0], rest[2]
        root = _unescape(fields[3])
        mount = Path(_unescape(fields[4]))
        if fstype == "cgroup2" and not seen_v2:
            found.append(Hierarchy(mount, root, ""))
            seen_v2 = True
        elif fstype == "cgroup" and V1_SYSTEMD in options.split(",") and not seen_v1:
            found.append(Hierarchy(mount, root, V1_SYSTEMD))
            seen_v1 = True
    return found


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _walk(top: Path) -> Iterator[tuple[Path, int]]:
    """(directory, inode) for top and every cgroup below it; vanishing cgroups are skipped."""
    try:
        yield top, os.stat(top).st_ino
    except OSError:
        return
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    # kernfs readdir gives the node id as d_ino: no stat per cgroup needed
                    if e.is_dir(follow_symlinks=False):
                        yield Path(e.path), e.inode()
                        stack.append(Path(e.path))
        except OSError:
            continue  # removed while we walked it


def _pick(hs: list[Hierarchy], v1: bool | None) -> list[Hierarchy]:
    has_v2 = any(not h.name for h in hs)
    if v1 is None:
        v1 = not has_v2  # v1 rows only where they are all the host has
    return [h for h in hs if not h.name or v1]


def snapshot(ts_ns: int, *, v1: bool | None = None,
             mounts: list[Hierarchy] | None = None) -> pa.Table:
    """Every cgroup that exists now, as CGROUP rows stamped ts_ns.

    v1: include the ``name=systemd`` v1 hierarchy (default: only when no v2 is mounted).
    """
    cols: dict[str, list[object]] = {n: [] for n in schema.CGROUP.names}
    for h in _pick(mounts if mounts is not None else hierarchies(), v1):
        for directory, ino in _walk(h.mount):
            path = h.path_of(directory)
            d = describe(path)
            cols["ts_ns"].append(ts_ns)
            cols["cgroup_id"].append(ino)
            cols["path"].append(path)
            cols["unit"].append(d["unit"])
            cols["pod_uid"].append(d["pod_uid"])
            cols["container_id"].append(d["container_id"])
    return pa.Table.from_pydict(cols, schema=schema.CGROUP)


def proc_cgroup(pid: int, *, mounts: list[Hierarchy] | None = None) -> str | None:
    """A process's cgroup path as CGROUP rows spell it: v2 where mounted, else v1 systemd."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    v2 = v1 = None
    for line in text.splitlines():
        num, controllers, path = line.split(":", 2)
        if num == "0" and controllers == "":
            v2 = path
        elif V1_SYSTEMD in controllers.split(","):
            v1 = f"{V1_SYSTEMD}:{path}"
    hs = mounts if mounts is not None else hierarchies()
    if any(not h.name for h in hs) or v1 is None:
        return v2
    return v1


class CgroupSource:
    """The cgroups at start, then new ones found by a rescan at each drain.

    The recorder's BPF ``cgroup:cgroup_mkdir`` probe sees every cgroup born during the trace, even
    ones gone within a second; the rescan is the fallback where that probe is unavailable and
    gives the same row for a cgroup both see (readers take the first row per cgroup_id).
    """

    table = "cgroup"

    def __init__(self, *, rescan: bool = True, v1: bool | None = None) -> None:
        self._rescan = rescan
        self._v1 = v1
        self._mounts = hierarchies()
        self._seen: set[tuple[str, int]] = set()
        self._pending: list[pa.Table] = []
        self._lock = threading.Lock()

    def _scan(self) -> pa.Table:
        t = snapshot(time.monotonic_ns(), v1=self._v1, mounts=self._mounts)
        keys = list(zip(t["path"].to_pylist(), t["cgroup_id"].to_pylist()))
        mask = [k not in self._seen for k in keys]
        self._seen.update(keys)
        return t.filter(pa.array(mask, pa.bool_()))

    def start(self) -> None:
        with self._lock:
            self._pending.append(self._scan())

    def drain(self) -> pa.Table | None:
        with self._lock:
            parts = self._pending
            self._pending = []
            if self._rescan and self._seen:
                parts.append(self._scan())
        parts = [p for p in parts if p.num_rows]
        return pa.concat_tables(parts) if parts else None

    def stop(self) -> None:
        """Nothing runs in the background; the last drain() does the last rescan."""
