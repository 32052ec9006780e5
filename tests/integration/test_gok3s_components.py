"""Issue 23's "Done when" on the fixture: gok3s (docs/gok3s.md) recorded with the default
recorder (stacks on, `--sched`), analyzed, and checked against gok3s's OWN truth log
(tracer/demo/gok3s_truth.py), once per Go toolchain:

* the CPU stretch (kube-apiserver's 300 ms of SHA-256 on one locked thread) is >= 90 %
  kube-apiserver: (1) among the on-CPU samples of the stretch's thread inside its truth window,
  read back with `k3sprof stacks --perf` as a user would (the exact per-sample attribution),
  and (2) on the critical path: the segments of gok3s's process covering the stretch carry at
  least 90 % of its thread CPU clock as `components["kube-apiserver"]`. With Go 1.19 the
  stretch's samples stop in `crypto/sha256.block`, whose amd64 assembly keeps SHA-256
  constants in the frame-pointer register: there the test asserts the analysis SAYS so
  (truncated stacks, one plain line), not that it attributes them;
* the kubelet's same-process readiness poll names its target component (kube-apiserver), its
  waiter (the process's own, k3s, with the line saying net/http dialed on its own goroutine),
  and an interval within the truth's cadence; the attempts it counts are the truth's;
* each exec names the component whose package forked it (`spawned_by_component`);
* the fsyncs are charged to kine's component (`blockers`).

The expected component names are read from the k3s profile's own `stack_components` rules,
applied to the Go package the truth log says did the work.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import K3SPROF, ROOT, free_port, record
from tracer import schema
from tracer.demo import gobuild
from tracer.demo.gok3s_truth import Truth, gok3s_command, read_truth

pytestmark = [pytest.mark.slow, pytest.mark.bpf]

END = "log:k3s is up and running"
PROFILE = json.loads((ROOT / "tracer" / "profiles" / "k3s.json").read_text())
SHA_BLOCK_GO119 = "crypto/sha256.block"
MIN_SHARE = 0.90


def component_of_package(package: str) -> str:
    """The profile's component for a Go package: the longest matching prefix rule (the
    independent reading of tracer/profiles/k3s.json's table, not the analyzer's code)."""
    rules = [
        r
        for r in PROFILE["stack_components"]["rules"]
        if package == r["prefix"] or package.startswith(r["prefix"].rstrip("/") + "/")
    ]
    assert rules, f"no stack_components rule for {package}"
    return str(max(rules, key=lambda r: len(r["prefix"]))["component"])


@dataclass
class Recorded:
    toolchain: str
    truth: Truth
    trace_dir: Path
    analysis: dict[str, Any]
    text: str
    api_port: int


def k3sprof(*args: str) -> str:
    p = subprocess.run([*K3SPROF, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, f"k3sprof {' '.join(args)}: {p.stderr[-2000:]}"
    return p.stdout


@pytest.fixture(scope="module", params=gobuild.TOOLCHAINS)
def recorded(request: pytest.FixtureRequest) -> Iterator[Recorded]:
    tc = gobuild.find_toolchain(request.param)
    binary = gobuild.build_gok3s(tc)
    d = Path(tempfile.mkdtemp(prefix="gok3c-", dir="/tmp"))  # short: kine.sock's path
    try:
        api = free_port()
        argv = gok3s_command(binary, d / "truth.jsonl", d / "data", apiserver_port=api,
                             kubelet_port=free_port())  # fmt: skip
        trace_dir = d / "t.trace"
        record(trace_dir, argv, "--sched", timeout=240)
        truth = read_truth(d / "truth.jsonl")
        assert truth.exit_ns is not None, "gok3s did not finish"
        assert truth.go == tc.version
        analysis = json.loads(k3sprof("analyze", str(trace_dir), "--end", END, "--json"))
        text = k3sprof("analyze", str(trace_dir), "--end", END)
        yield Recorded(tc.name, truth, trace_dir, analysis, text, api)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Sample:
    pid: int
    tid: int
    t_us: int
    frames: list[str]  # innermost first, as `perf script` prints them


def perf_samples(trace_dir: Path, *extra: str) -> list[Sample]:
    """`k3sprof stacks TRACE --perf [extra]`: every on-CPU sample (blocks of a header line
    `comm pid/tid secs.usecs: 1 cpu-clock:`, frames innermost first, a blank line)."""
    out: list[Sample] = []
    for block in k3sprof("stacks", str(trace_dir), "--perf", *extra).split("\n\n"):
        lines = [x for x in block.splitlines() if x.strip()]
        if not lines:
            continue
        m = re.match(r"\S+ (\d+)/(\d+) (\d+)\.(\d{6}): 1 cpu-clock:$", lines[0])
        assert m, lines[0]
        frames = [re.sub(r"^\t0 (.*) \(\S+\)$", r"\1", x) for x in lines[1:]]
        out.append(Sample(int(m[1]), int(m[2]), int(m[3]) * 1_000_000 + int(m[4]), frames))
    return out


def in_stretch(r: Recorded, s: Sample) -> bool:
    cpu = r.truth.cpu[0]
    # perf script stamps are truncated to the microsecond
    return s.tid == cpu.tid and cpu.start_ns // 1000 <= s.t_us <= cpu.end_ns // 1000


def test_the_cpu_stretch_is_kube_apiservers(recorded: Recorded) -> None:
    r = recorded
    cpu = r.truth.cpu[0]
    want = component_of_package(cpu.package)
    assert want == "kube-apiserver"
    pid = str(r.truth.pid)
    mine = [s for s in perf_samples(r.trace_dir, "--pid", pid) if in_stretch(r, s)]
    named = [
        s for s in perf_samples(r.trace_dir, "--pid", pid, "--component", want) if in_stretch(r, s)
    ]
    # the stretch is 300 ms of thread CPU: at 49 Hz about 15 samples land in it
    expected = cpu.thread_cpu_ns * 49 / 1e9
    print(
        f"{r.toolchain}: stretch {cpu.thread_cpu_ns / 1e6:.1f} ms thread CPU, "
        f"{len(mine)} samples on tid {cpu.tid} (expected ~{expected:.1f}), "
        f"{len(named)} of them {want}"
    )
    assert len(mine) >= 0.5 * expected, (len(mine), expected)
    if r.toolchain == "debian":
        # Go 1.19: crypto/sha256.block (amd64 assembly) holds SHA-256 constants in BP, so the
        # frame-pointer walk stops after its frame: the analysis must say so, plainly
        leafs = [s for s in mine if s.frames and s.frames[0] == SHA_BLOCK_GO119]
        assert len(leafs) >= 0.5 * len(mine), [s.frames for s in mine]
        assert all(s.frames[-1] == "(truncated)" for s in leafs), [s.frames for s in leafs]
        note = re.search(
            rf"note: k3s\[{pid}\]: (\d+) of (\d+) on-CPU stacks stop after their "
            r"first frame \(no frame pointer to follow: .*crypto/sha256 on amd64\)",
            r.text,
        )
        assert note, r.text
        assert int(note[1]) >= len(leafs)
        assert any(
            p.startswith(f"k3s[{pid}]: ") and "stop after their first frame" in p
            for p in r.analysis["stacks"]["problems"]
        )
        # and it does not claim the stretch for kube-apiserver
        assert len(named) < MIN_SHARE * len(mine)
        return
    # Go 1.27: full stacks through hashOpenAPISpec (SHA-NI assembly keeps BP)
    assert len(named) >= MIN_SHARE * len(mine), [s.frames for s in mine if s not in named]
    # the critical path: the stretch lies in segments of gok3s's process (it is on the path),
    # and those segments' kube-apiserver time accounts for >= 90 % of its thread CPU clock
    covering = [
        s
        for s in r.analysis["critical_path"]
        if s["end_ns"] > cpu.start_ns and s["start_ns"] < cpu.end_ns
    ]
    ours = [s for s in covering if (s.get("components_of") or {}).get("pid") == r.truth.pid]
    covered = sum(min(s["end_ns"], cpu.end_ns) - max(s["start_ns"], cpu.start_ns) for s in ours)
    assert covered >= 0.9 * (cpu.end_ns - cpu.start_ns), covering
    api_ns = sum(int((s.get("components") or {}).get(want, 0)) for s in ours)
    print(
        f"path: {len(ours)} segments cover the stretch, kube-apiserver {api_ns / 1e6:.1f} ms"
        f" = {100 * api_ns / cpu.thread_cpu_ns:.1f} % of its thread CPU"
    )
    assert api_ns >= MIN_SHARE * cpu.thread_cpu_ns, ours
    # and the text says it on those segments
    assert re.search(rf"k3s\[{pid}\] on-CPU: kube-apiserver \d+ %", r.text), r.text


def _regular(gaps: list[int]) -> bool:
    """Every gap within 10 % of their median: the cadence the poll detector documents that
    it finds (tracer/analyzer/polls.py, REL_TOL)."""
    med = statistics.median(gaps)
    return all(abs(g - med) <= 0.10 * med for g in gaps)


def test_the_same_process_poll_names_its_components_and_cadence(recorded: Recorded) -> None:
    r = recorded
    ep = f"127.0.0.1:{r.api_port}"
    ws = [
        w for w in r.analysis["waits"] if w["kind"] in ("poll", "listener") and w["endpoint"] == ep
    ]
    assert len(ws) == 1, r.analysis["waits"]
    w = ws[0]
    pid = r.truth.pid
    assert w["waiter"]["pid"] == pid and w["target"]["pid"] == pid  # one process
    attempt = r.truth.polls[0]
    assert component_of_package("k8s.io/apiserver/pkg/server") == attempt.target_component
    assert w["target_component"] == attempt.target_component  # kube-apiserver
    # net/http dials on a goroutine of its own: the waiter is the process's own, and a line says why
    assert w["waiter_component"] == "k3s"
    line = (
        f"k3s[{pid}]: its connects to {ep} were made on net/http's dialer goroutine "
        "(Go dials for a request on a goroutine of its own): no frame names the component "
        "that asked, so waiter_component is the process's own (k3s)"
    )
    assert line in r.text and line in r.analysis["stacks"]["problems"]
    # its attempts are the truth's: each truth attempt's connect falls inside its window
    last = w["last_attempt_ns"] or w["first_ok_ns"]
    covered = [a for a in r.truth.polls if a.end_ns >= w["first_attempt_ns"] and a.start_ns <= last]
    assert len(covered) == w["attempts"], (w, covered)
    gaps = [b.start_ns - a.start_ns for a, b in itertools.pairwise(covered)]
    med = statistics.median(gaps)
    print(
        f"{r.toolchain}: {w['kind']} wait, {w['attempts']} attempts every "
        f"{w['interval_ns'] / 1e6:.1f} ms; truth gaps {[round(g / 1e6, 1) for g in gaps]} ms"
    )
    assert abs(w["interval_ns"] - med) <= 0.10 * med, (w["interval_ns"], gaps)
    # when the truth's not-ready answers came at a cadence the detector documents it finds,
    # it is a poll wait (the loop that went on after the listen), not only the listener part
    answered = [a for a in r.truth.polls if a.answer != "refused"]
    later = [b.start_ns - a.start_ns for a, b in itertools.pairwise(answered)]
    if len(answered) >= 3 and _regular(later):
        assert w["kind"] == "poll", (w, later)
        assert abs(w["interval_ns"] - statistics.median(later)) <= 0.10 * statistics.median(later)
    else:
        print(
            f"the truth's answered attempts were not regular within 10 % ({later}): "
            "the detector may see only the listener part"
        )


def test_each_exec_names_the_component_that_ran_it(recorded: Recorded) -> None:
    r = recorded
    procs = {p["pid"]: p for p in r.analysis["processes"]}
    seen = {}
    for e in r.truth.execs:  # flannel's iptables, the agent's modprobe
        want = component_of_package(e.package)
        p = procs.get(e.child_pid)
        assert p is not None, (e, sorted(procs))
        assert p["comm"] == Path(e.path).name[:15]
        seen[e.argv[0]] = (p["spawned_by_component"], want)
        assert p["spawned_by_component"] == want, (e, p)
    assert seen["iptables"][1] == "cni" and seen["modprobe"][1] == "k3s", seen


def test_the_fsyncs_are_charged_to_kine(recorded: Recorded) -> None:
    r = recorded
    want = component_of_package(r.truth.fsyncs[0].package)
    assert want == "kine"
    rows = [b for b in r.analysis["blockers"]["fsync"] if b["pid"] == r.truth.pid]
    assert len(rows) == 1, r.analysis["blockers"]
    b = rows[0]
    assert b["calls"] == len(r.truth.fsyncs)
    assert b["component"] == want and set(b["components"]) == {want}, b
    # each recorded fsync lies inside its truth span: the total cannot exceed the truth's
    truth_ns = sum(f.end_ns - f.start_ns for f in r.truth.fsyncs)
    assert 0 < b["components"][want] == b["total_ns"] <= truth_ns, (b, truth_ns)
    assert schema.load(r.trace_dir).lost_events == 0
