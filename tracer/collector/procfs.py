"""What is already running when the probes attach, from /proc (a late attach still has a tree).

Also the machine facts for the trace metadata. No BPF here.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from tracer import host, schema

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_facts() -> dict[str, Any]:
    mono = time.monotonic_ns()
    real = time.time_ns()
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "boot_id": host.boot_id(),
        "clock": "CLOCK_MONOTONIC",
        "realtime_offset_ns": real - mono,
        "cpus": os.cpu_count(),
    }


def _boottime_minus_monotonic_ns() -> int:
    # /proc/PID/stat starttime counts CLOCK_BOOTTIME ticks; traces use CLOCK_MONOTONIC
    # (they differ by the time spent suspended).
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) - time.monotonic_ns()


def _read(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except OSError:
        return None


def _cgroup_path(pid: str) -> str | None:
    raw = _read(Path("/proc") / pid / "cgroup")
    if raw is None:
        return None
    for line in raw.decode(errors="replace").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def cgroup_v2_mount() -> tuple[Path, str] | None:
    """(where cgroup v2 is mounted, the mount's root inside the hierarchy), or None."""
    from tracer.context import cgroups

    for h in cgroups.hierarchies():
        if not h.name:
            return h.mount, h.root
    return None


def cgroup_id(path: str | None, mount: tuple[Path, str] | None) -> int | None:
    """The v2 cgroup id (= directory inode, what bpf_get_current_cgroup_id() returns)."""
    if path is None or mount is None:
        return None
    where, root = mount
    rel = path[len(root.rstrip("/")):] if path.startswith(root.rstrip("/")) else path
    try:
        return (where / rel.lstrip("/")).stat().st_ino
    except OSError:
        return None


def process_snapshot(ts_ns: int) -> pa.Table:
    """One row per live process (thread groups only)."""
    off = _boottime_minus_monotonic_ns()
    mount = cgroup_v2_mount()
    rows: dict[str, list[Any]] = {f.name: [] for f in schema.SNAPSHOT}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        base = Path("/proc") / entry.name
        stat = _read(base / "stat")
        if stat is None:
            continue  # exited while we looked
        # comm may contain spaces and parentheses: it ends at the LAST ')'
        s = stat.decode(errors="replace")
        lp, rp = s.find("("), s.rfind(")")
        comm = s[lp + 1 : rp]
        fields = s[rp + 2 :].split()
        ppid = int(fields[1])
        start_ticks = int(fields[19])
        try:
            exe = os.readlink(base / "exe")
        except OSError:
            exe = None  # kernel threads, or gone
        cmd = _read(base / "cmdline") or b""
        argv = [a.decode(errors="replace") for a in cmd.split(b"\0")[:-1]] if cmd else []
        try:
            uid = entry.stat().st_uid
        except OSError:
            uid = 0
        cg = _cgroup_path(entry.name)
        rows["ts_ns"].append(ts_ns)
        rows["pid"].append(int(entry.name))
        rows["ppid"].append(ppid)
        rows["comm"].append(comm)
        rows["exe"].append(exe)
        rows["argv"].append(argv)
        rows["uid"].append(uid)
        rows["start_ns"].append(max(0, start_ticks * 1_000_000_000 // CLK_TCK - off))
        rows["cgroup"].append(cg)
        rows["cgroup_id"].append(cgroup_id(cg, mount))
    return pa.Table.from_pydict(rows, schema=schema.SNAPSHOT)


def _socket_inodes() -> dict[int, tuple[int, str]]:
    """socket inode -> (pid, comm) of a process holding it."""
    owners: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fd_dir = Path("/proc") / entry.name / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        comm = (_read(Path("/proc") / entry.name / "comm") or b"").decode().strip()
        for fd in fds:
            try:
                link = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                owners.setdefault(int(link[8:-1]), (int(entry.name), comm))
    return owners


def _hex_ip(h: str) -> str:
    b = bytes.fromhex(h)
    if len(b) == 4:
        return socket.inet_ntop(socket.AF_INET, b[::-1])
    # /proc/net/tcp6 prints four host-order 32-bit words
    words = b"".join(b[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listener_snapshot(ts_ns: int) -> pa.Table:
    """Sockets already listening (TCP and unix), with the process holding each."""
    owners = _socket_inodes()
    rows: dict[str, list[Any]] = {f.name: [] for f in schema.LISTENERS}

    def add(endpoint: str, family: str, inode: int) -> None:
        pid, comm = owners.get(inode, (None, None))
        rows["ts_ns"].append(ts_ns)
        rows["endpoint"].append(endpoint)
        rows["family"].append(family)
        rows["pid"].append(pid)
        rows["comm"].append(comm)

    for fname, fam in (("tcp", "inet"), ("tcp6", "inet6")):
        raw = _read(Path("/proc/net") / fname)
        for line in (raw or b"").decode().splitlines()[1:]:
            f = line.split()
            if len(f) < 10 or f[3] != "0A":  # 0A = TCP_LISTEN
                continue
            ip_hex, port_hex = f[1].split(":")
            ip = _hex_ip(ip_hex)
            port = int(port_hex, 16)
            ep = f"{ip}:{port}" if fam == "inet" else f"[{ip}]:{port}"
            add(ep, fam, int(f[9]))
    raw = _read(Path("/proc/net/unix"))
    for line in (raw or b"").decode(errors="replace").splitlines()[1:]:
        f = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON = 0x10000 = listening
        if len(f) < 8 or not int(f[3], 16) & 0x10000:
            continue
        add("unix:" + f[7], "unix", int(f[6]))
    return pa.Table.from_pydict(rows, schema=schema.LISTENERS)
