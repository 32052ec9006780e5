"""gok3s's truth log, read into typed records; and the argv of a gok3s run.

gok3s (tracer/demo/gok3s, docs/gok3s.md) is the k3s-shaped Go stand-in: it writes what it did,
on CLOCK_MONOTONIC (the trace's clock), as JSON lines. Tests (tests/integration/test_gok3s.py,
and later the stack and component tests) compare a recording of it with this truth, never with
the recorder's own view; `k3sprof demo` prints it beside the analysis. The records carry the
component and Go package that did the work:

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

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tracer._errors import TracerError

T = TypeVar("T")


class TruthLogError(TracerError):
    """gok3s's truth log is missing, incomplete or malformed."""


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
        """The one exec of component (TruthLogError unless there is exactly one)."""
        found = [e for e in self.execs if e.component == component]
        if len(found) != 1:
            raise TruthLogError(f"{len(found)} execs of {component} in the truth log")
        return found[0]


def _pick(cls: type[T], row: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in row.items() if k in names})


def read_truth(path: Path) -> Truth:
    """The truth log at path; TruthLogError if it is unreadable, incomplete or malformed."""
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows or rows[0].get("event") != "start":
            raise TruthLogError(f"{path}: no start line (did gok3s run with --truth?)")
        return _truth(path, rows)
    except OSError as e:
        raise TruthLogError(f"cannot read the truth log {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise TruthLogError(f"{path}: malformed truth log ({type(e).__name__}: {e})") from None


def _truth(path: Path, rows: list[dict[str, Any]]) -> Truth:
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
            raise TruthLogError(f"{path}: unknown event {ev!r}")
    spans: list[CpuStretch | PollAttempt | Exec | Fsync] = [*t.cpu, *t.polls, *t.execs, *t.fsyncs]
    for span in spans:
        if span.start_ns > span.end_ns:
            raise TruthLogError(f"{path}: a span ends before it starts: {span}")
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
