"""Named frames and components of the trace's stacks, read from the trace alone.

The SEAM between the analyzer and tracer/symbols (issue 23 parts 2-3): the analyzer asks only
``Namer.frames(pid, ts_ns, pcs)`` (a stack's PCs -> its function names, innermost first, inlined
callees expanded) and ``component_of(functions, own)`` (a named stack -> its k3s component).
Until tracer/symbols lands, both are answered here from the trace's own tables, the way the
schema 1.3 contract describes them:

* a PC of process P is looked up in P's ``mappings`` (the snapshot taken at or before the
  stack; P's first one otherwise: a stack can be taken before its maps were read), then in the
  trace's ``symbols`` extract at (binary, pc) (the ELF virtual address of a non-PIE executable,
  which Go's static binaries are) else at (binary, pc - start + file_offset) (a PIE's);
* an address nothing names is ``basename+0xOFFSET``; a PC outside every mapping is ``0xPC``.

Nothing here reads a binary, the clock or the host: a trace symbolises the same on any machine.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracer.schema import Trace

#: package path prefix -> component (issue 23 part 3: k3s's real import paths). Shared code
#: (runtime, net/http, client-go, grpc...) names no component and is skipped.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    ("k8s.io/kubernetes/pkg/kubelet", "kubelet"),
    ("k8s.io/apiserver", "kube-apiserver"),
    ("k8s.io/kube-aggregator", "kube-apiserver"),
    ("k8s.io/apiextensions-apiserver", "kube-apiserver"),
    ("k8s.io/kubernetes/pkg/controlplane", "kube-apiserver"),
    ("k8s.io/kubernetes/pkg/controller", "kube-controller-manager"),
    ("k8s.io/kubernetes/pkg/scheduler", "kube-scheduler"),
    ("k8s.io/kubernetes/pkg/proxy", "kube-proxy"),
    ("k8s.io/cloud-provider", "cloud-controller-manager"),
    ("github.com/k3s-io/kine", "kine"),
    ("github.com/mattn/go-sqlite3", "kine"),
    ("go.etcd.io/etcd/server", "etcd"),
    ("github.com/flannel-io/flannel", "flannel"),
    ("github.com/cloudnativelabs/kube-router", "network-policy"),
    ("github.com/k3s-io/k3s", "k3s"),
    ("github.com/k3s-io/helm-controller", "k3s"),
    ("github.com/rancher/wrangler", "k3s"),
    ("github.com/rancher/remotedialer", "k3s"),
)


def _package_match(function: str, prefix: str) -> bool:
    """`prefix` is the function's package path or a parent of it (".../kubelet" matches
    ".../kubelet.(*Kubelet).Run" and ".../kubelet/prober.run", not ".../kubeletx.f")."""
    if not function.startswith(prefix):
        return False
    rest = function[len(prefix):]
    return rest == "" or rest[0] in "./"


def component_of(
    functions: Sequence[str], own: str | None, rules: Sequence[tuple[str, str]] = DEFAULT_RULES
) -> str | None:
    """The component of a stack (functions innermost first): the first frame from the top that
    a rule names; a stack with none is the process's own (`own`, its executable's component)."""
    for fn in functions:
        if fn.startswith("main.") and own is not None:
            return own
        for prefix, comp in rules:
            if _package_match(fn, prefix):
                return comp
    return own


@dataclass
class _Mapping:
    start: int
    end: int
    file_offset: int
    path: str
    binary: str


@dataclass
class Namer:
    """PCs of a process -> function names (see the module docstring)."""

    #: pid -> [(snapshot ts, its mappings sorted by start)] sorted by ts
    maps: dict[int, list[tuple[int, list[_Mapping]]]] = field(default_factory=dict)
    #: (binary, address) -> function names innermost first (inline chain)
    names: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    #: binaries with at least one symbols row
    named_binaries: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, trace: Trace) -> Namer:
        n = cls()
        mt = trace.table("mappings")
        snaps: dict[int, dict[int, list[_Mapping]]] = defaultdict(lambda: defaultdict(list))
        for r in mt.to_pylist():
            if r["pid"] is None or r["start"] is None or r["end"] is None:
                continue
            snaps[int(r["pid"])][int(r["ts_ns"] or 0)].append(
                _Mapping(int(r["start"]), int(r["end"]), int(r["file_offset"] or 0),
                         r["path"] or "?", r["binary"] or "")
            )
        for pid, by_ts in snaps.items():
            n.maps[pid] = sorted((ts, sorted(ms, key=lambda m: m.start))
                                 for ts, ms in by_ts.items())
        st = trace.table("symbols")
        rows: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
        for b, a, d, f in zip(st["binary"].to_pylist(), st["address"].to_pylist(),
                              st["depth"].to_pylist(), st["function"].to_pylist()):
            if b is None or a is None or not f:
                continue
            rows[(b, int(a))].append((int(d or 0), str(f)))
            n.named_binaries.add(b)
        n.names = {k: [f for _, f in sorted(v)] for k, v in rows.items()}
        return n

    def snapshot(self, pid: int, ts: int) -> int:
        """Which of pid's mapping snapshots a stack taken at ts uses (-1: none)."""
        snaps = self.maps.get(pid)
        if not snaps:
            return -1
        i = bisect.bisect_right([t for t, _ in snaps], ts) - 1
        return max(i, 0)

    def frames(self, pid: int, snap: int, pcs: Sequence[int]) -> list[str]:
        """Function names of a stack's PCs (innermost first, inline chains expanded)."""
        maps = self.maps[pid][snap][1] if snap >= 0 else []
        starts = [m.start for m in maps]
        out: list[str] = []
        for pc in pcs:
            i = bisect.bisect_right(starts, pc) - 1
            m = maps[i] if i >= 0 and pc < maps[i].end else None
            if m is None:
                out.append(f"0x{pc:x}")
                continue
            off = pc - m.start + m.file_offset
            got = self.names.get((m.binary, pc)) or self.names.get((m.binary, off))
            if got:
                out.extend(got)
            else:
                out.append(f"{m.path.rsplit('/', 1)[-1]}+0x{off:x}")
        return out

    def binaries_of(self, pid: int) -> set[str]:
        return {m.binary for _, ms in self.maps.get(pid, []) for m in ms}


__all__ = ["DEFAULT_RULES", "Namer", "component_of"]
