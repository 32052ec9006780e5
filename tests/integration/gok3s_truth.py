"""gok3s's truth log, read into typed records; and how to run gok3s for a test.

gok3s (tracer/demo/gok3s, docs/gok3s.md) is the k3s-shaped Go stand-in: it writes what it did,
on CLOCK_MONOTONIC (the trace's clock), as JSON lines. Tests compare a recording of it with this
truth, never with the recorder's own view. For later tests (stacks, components) the records
carry the component and Go package that did the work:

    truth = read_truth(path)
    truth.cpu[0]             # CpuStretch: kube-apiserver's hashing, start/end ns, tid, thread CPU
    truth.polls              # [PollAttempt]: kubelet -> kube-apiserver /readyz, one per attempt
    truth.execs              # [Exec]: flannel's `iptables --version`, k3s's `modprobe --dry-run`
    truth.fsyncs             # [Fsync]: kine's fsync calls (start/end ns, tid)
    truth.listens            # {component: Listen}: kine.sock, the apiserver's and kubelet's ports
    truth.exec_of("flannel") # the one exec of a component

Every time satisfies start <= end; an event's syscalls happen inside [start_ns, end_ns]
(the clock is read just before and just after), so a recorded syscall of that event must
fall inside its window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CpuStretch:
    component: str
    package: str
    func: str
    start_ns: int
    end_ns: int
    tid: int
    thread_cpu_ns: int  # CLOCK_THREAD_CPUTIME_ID of tid over [start_ns, end_ns]


@dataclass(frozen=True)
class PollAttempt:
    component: str
    target_component: str
    url: str
    attempt: int
    start_ns: int
    end_ns: int
    answer: str  # "refused" | "503" | "200" | "error: ..."

    @property
    def port(self) -> int:
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


@dataclass(frozen=True)
class Exec:
    component: str
    package: str
    argv: list[str]
    path: str
    child_pid: int
    tid: int  # the thread that forked
    start_ns: int  # before fork
    started_ns: int  # after exec succeeded (os/exec's Start returned)
    end_ns: int  # after the child was reaped
    exit_code: int


@dataclass(frozen=True)
class Fsync:
    component: str
    package: str
    i: int
    path: str
    start_ns: int
    end_ns: int
    tid: int


@dataclass(frozen=True)
class Listen:
    component: str
    endpoint: str  # "127.0.0.1:PORT" or "unix:/path"
    t_ns: int  # after listen() returned


@dataclass
class Truth:
    pid: int
    go: str  # runtime.Version() of the toolchain that built it
    start_ns: int
    up_ns: int | None = None  # "k3s is up and running"
    exit_ns: int | None = None  # everything done (exit 0 follows)
    apiserver_ready_ns: int | None = None
    cpu: list[CpuStretch] = field(default_factory=list)
    polls: list[PollAttempt] = field(default_factory=list)
    execs: list[Exec] = field(default_factory=list)
    fsyncs: list[Fsync] = field(default_factory=list)
    listens: dict[str, Listen] = field(default_factory=dict)

    def exec_of(self, component: str) -> Exec:
        found = [e for e in self.execs if e.component == component]
        assert len(found) == 1, f"{len(found)} execs of {component} in the truth log"
        return found[0]


def _pick(cls: type[Any], row: dict[str, Any]) -> Any:
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in row.items() if k in names})


def read_truth(path: Path) -> Truth:
    """The truth log at path; AssertionError if it is incomplete or malformed."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert rows and rows[0]["event"] == "start", f"{path}: no start line"
    t = Truth(pid=rows[0]["pid"], go=rows[0]["go"], start_ns=rows[0]["t_ns"])
    for r in rows[1:]:
        ev = r["event"]
        if ev == "cpu":
            t.cpu.append(_pick(CpuStretch, r))
        elif ev == "poll":
            t.polls.append(_pick(PollAttempt, r))
        elif ev == "exec":
            t.execs.append(_pick(Exec, r))
        elif ev == "fsync":
            t.fsyncs.append(_pick(Fsync, r))
        elif ev == "listen":
            t.listens[r["component"]] = _pick(Listen, r)
        elif ev == "ready":
            t.apiserver_ready_ns = r["t_ns"]
        elif ev == "up":
            t.up_ns = r["t_ns"]
        elif ev == "exit":
            t.exit_ns = r["t_ns"]
        else:
            raise AssertionError(f"{path}: unknown event {ev!r}")
    for span in [*t.cpu, *t.polls, *t.execs, *t.fsyncs]:
        assert span.start_ns <= span.end_ns, span
    return t


def gok3s_command(
    binary: Path,
    truth: Path,
    data_dir: Path,
    *,
    apiserver_port: int,
    kubelet_port: int,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """argv of a gok3s run on private ports and a private data dir, truth to `truth`."""
    return [
        str(binary), "--truth", str(truth), "--data-dir", str(data_dir),
        "--apiserver-addr", f"127.0.0.1:{apiserver_port}",
        "--kubelet-addr", f"127.0.0.1:{kubelet_port}", *extra,
    ]  # fmt: skip
