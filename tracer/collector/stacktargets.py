"""Whose user stacks are taken: the stacks concern's target set, written into BPF maps.

Imported before the probes go live (start.py), so: standard library and bpfcache only.
The target set itself is kept in BPF (bpf/stacks.bpf.c: fork inheritance, exec by comm,
exit); this module writes its inputs: the profile's executable names, the processes of
those names already running at attach, and the seed of `record -- CMD`.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tracer.collector import bpfcache

#: the stacks concern's default sampling rate (Hz): a prime, so the samples do not beat with
#: the periodic work of the sampled programs (10 ms, 100 ms timers), as BCC's profile does
SAMPLE_HZ = 49
STACK_WHY_EXE = 2

#: profile -> the executables (comm after exec) whose processes are stacks targets, besides
#: the process tree of `record -- CMD`. comm is cut to 15 bytes by the kernel, so a name
#: matches the first 15 bytes of the executable's name (kube-controller-manager ->
#: "kube-controller"). k3s: the Go daemons of a k3s node that a startup waits on.
PROFILE_EXES: Mapping[str, tuple[str, ...]] = {
    "k3s": ("k3s", "k3s-server", "k3s-agent", "containerd", "etcd", "kubelet",
            "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kube-proxy",
            "flanneld"),
    "generic": (),
}

def comm_key(name: str) -> bytes:
    """The key of stack_comms: the name as the kernel keeps comm (15 bytes + NUL pad)."""
    return name.encode()[:15].ljust(16, b"\0")


def running_with_comm(names: Iterable[str], proc: Path = Path("/proc")) -> list[int]:
    """tgids of the processes running now whose comm is one of names (first 15 bytes)."""
    want = {comm_key(n) for n in names}
    out: list[int] = []
    if not want:
        return out
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            comm = (proc / entry.name / "comm").read_bytes().rstrip(b"\n")
        except OSError:
            continue
        if comm_key(comm.decode("utf-8", "replace")) in want:
            out.append(int(entry.name))
    return sorted(out)


@dataclass
class Targets:
    """The BPF maps that decide whose stacks are taken (by fd)."""

    targets_fd: int
    comms_fd: int
    seed_fd: int

    def add(self, tgid: int, why: int = STACK_WHY_EXE) -> None:
        bpfcache.update(self.targets_fd, struct.pack("<I", tgid), bytes([why]))

    def add_comms(self, names: Iterable[str]) -> None:
        for n in names:
            bpfcache.update(self.comms_fd, comm_key(n), b"\1")

    @contextlib.contextmanager
    def seeding(self) -> Iterator[None]:
        """While inside, a process this thread forks is a target (and so its whole tree):
        wrap the fork of `record -- CMD` in it."""
        bpfcache.update(self.seed_fd, b"\0\0\0\0", struct.pack("<I", _gettid()))
        try:
            yield
        finally:
            bpfcache.update(self.seed_fd, b"\0\0\0\0", b"\0\0\0\0")


def _gettid() -> int:
    return int(getattr(os, "gettid", lambda: os.getpid())())




def targets_of(map_fd: Callable[[str], int]) -> Targets:
    """The target maps of loaded probes, by name (probes.Attached.map_fd)."""
    return Targets(map_fd("stack_targets"), map_fd("stack_comms"),
                   map_fd("stack_seed_tid"))


def seed(targets: Targets, profile: str) -> int:
    """Write the profile's executables and add their running processes; returns how many
    processes were added."""
    names = PROFILE_EXES.get(profile, ())
    targets.add_comms(names)
    running = [p for p in running_with_comm(names) if p != os.getpid()]
    for pid in running:
        targets.add(pid)
    return len(running)
