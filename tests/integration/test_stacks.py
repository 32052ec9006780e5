"""User stacks recorded with real BPF from a real Go program built here (docs/stacks.md).

Ground truth, independent of the recorder: the Go workload (workloads/gostacks) logs its own
thread ids, CLOCK_MONOTONIC times, CPU time (getrusage) and context switches; stack PCs are
named by `go tool addr2line` on the stripped binary through the trace's own `mappings`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import K3SPROF, ROOT, WORKLOADS, free_port, record
from tracer import schema

pytestmark = pytest.mark.bpf

GO_SRC = WORKLOADS / "gostacks"


def _go() -> str:
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    if not Path(go).exists():
        raise AssertionError("no Go toolchain: `apt-get install golang-go` (scripts/setup.sh)")
    return go


@pytest.fixture(scope="module")
def gostacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workload, built stripped (-s -w) like k3s, offline."""
    out = tmp_path_factory.mktemp("gobuild")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local",
           "GOCACHE": str(out / "cache"), "GOPATH": str(out / "gopath"), "CGO_ENABLED": "0"}
    exe = out / "gostacks"
    subprocess.run([_go(), "build", "-ldflags=-s -w", "-o", str(exe), "."], cwd=GO_SRC,
                   env=env, check=True, capture_output=True, timeout=300)
    return exe


def _load_segments(path: Path) -> list[tuple[int, int, int]]:
    """(p_offset, p_vaddr, p_filesz) of an ELF64's PT_LOAD segments."""
    with open(path, "rb") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        out = []
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            ptype, _flags, off, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", ph)
            if ptype == 1:
                out.append((off, vaddr, filesz))
    return out


def _symbolise(trace: schema.Trace, pid: int, exe: Path) -> dict[int, list[str]]:
    """stack_id -> function names, innermost first, for the stacks of `pid` in exe (PCs
    through the trace's mappings of pid, then `go tool addr2line` on the binary)."""
    maps = [m for m in trace.table("mappings").to_pylist() if m["pid"] == pid]
    assert maps, "no mappings recorded for the workload"
    segs = _load_segments(exe)
    ids = {s for s in trace.table("samples").to_pylist() if s["pid"] == pid
           for s in [s["stack_id"]] if s is not None}
    stacks = {r["stack_id"]: r["frames"] for r in trace.table("stacks").to_pylist()
              if r["stack_id"] in ids}
    addrs: dict[tuple[int, int], int] = {}
    for sid, frames in stacks.items():
        for depth, pc in enumerate(frames):
            pc = pc - 1 if depth else pc  # a return address points after its call
            for m in maps:
                if m["start"] <= pc < m["end"] and Path(m["path"]).name == exe.name:
                    off = pc - m["start"] + m["file_offset"]
                    for p_off, vaddr, size in segs:
                        if p_off <= off < p_off + size:
                            addrs[(sid, depth)] = off - p_off + vaddr
    uniq = sorted(set(addrs.values()))
    out = subprocess.run([_go(), "tool", "addr2line", str(exe)],
                         input="".join(f"0x{a:x}\n" for a in uniq), capture_output=True,
                         text=True, check=True).stdout.splitlines()
    name = {a: out[2 * i] for i, a in enumerate(uniq)}
    return {sid: [name.get(addrs.get((sid, d), -1), "?") for d in range(len(frames))]
            for sid, frames in stacks.items()}


def _run(tmp_path: Path, exe: Path, burn_ms: int, *extra: str,
         sync_file: Path | None = None) -> tuple[schema.Trace, Any]:
    truth_file = tmp_path / "truth.json"
    record(tmp_path / "t", [str(exe), str(burn_ms), str(free_port()), str(truth_file),
                            *([str(sync_file)] if sync_file else [])], *extra)
    return schema.load(tmp_path / "t"), json.loads(truth_file.read_text())


def test_cpu_samples_land_in_the_burning_function_at_the_sampling_rate(
        tmp_path: Path, gostacks: Path) -> None:
    # GIVEN a stripped Go program that burns 1.5 s of its own CPU time in main.burnCPU
    trace, truth = _run(tmp_path, gostacks, 1500)
    pid = truth["pid"]
    st = trace.meta["stacks"]
    assert trace.meta["probes"]["stacks"] == "attached" and st["sample_hz"] == 49
    samples = [s for s in trace.table("samples").to_pylist() if s["pid"] == pid]
    cpu = [s for s in samples if s["kind"] == "cpu"]
    # THEN the number of samples is its CPU time x 49 Hz, within the sampling error: the
    # cpu-clock event fires every 1/49 s on each CPU, so each on-CPU stretch of the process
    # gets floor or ceil of its length x 49, with variance <= min(1/4, its expected count):
    # Var(N) <= min(stretches / 4, E[N]); stretches <= its context switches + 1 per thread
    expect = truth["cpu_ns"] * 49 / 1e9
    sd = math.sqrt(min((truth["ctx_switches"] + 16) / 4, expect))
    assert abs(len(cpu) - expect) <= 4 * sd + 1, (len(cpu), expect, sd)
    # AND the samples of the burning thread during the burn name main.burnCPU (go tool
    # addr2line on the stripped binary, PCs through the recorded mappings)
    names = _symbolise(trace, pid, gostacks)
    burn = [s for s in cpu if s["tid"] == truth["burn_tid"]
            and truth["burn_t0"] <= s["ts_ns"] <= truth["burn_t1"]]
    expect_burn = 1.5 * 49  # the thread's own CPU time in the burn, x 49 Hz
    assert len(burn) >= expect_burn - 4 * math.sqrt(expect_burn) - 1, len(burn)
    inside = [s for s in burn if s["stack_id"] is not None
              and "main.burnCPU" in names[s["stack_id"]]]
    assert len(inside) >= 0.9 * len(burn), [names.get(s["stack_id"]) for s in burn][:5]
    # the walk went all the way out: main.main and the runtime's main below it
    deep = names[inside[0]["stack_id"]]
    assert "main.main" in deep and deep[-1].startswith("runtime."), deep
    # AND the trace's own symbol extract (written at stop) names every PC of the workload's
    # stacks as go tool addr2line does (the physical function: the extract's deepest row)
    extract = {(r["binary"], r["address"], r["depth"]): r["function"]
               for r in trace.table("symbols").to_pylist()}
    maps = [m for m in trace.table("mappings").to_pylist() if m["pid"] == pid
            and Path(m["path"]).name == gostacks.name]
    checked = 0
    for sid, fnames in names.items():
        frames = next(r["frames"] for r in trace.table("stacks").to_pylist()
                      if r["stack_id"] == sid)
        for depth, pc in enumerate(frames):
            pc = pc - 1 if depth else pc
            m = next((m for m in maps if m["start"] <= pc < m["end"]), None)
            if m is None:
                continue
            addr = pc - m["start"] + m["file_offset"]
            rows = [f for (b, a, _), f in sorted(extract.items()) if b == m["binary"]
                    and a == addr]
            assert rows and rows[-1] == fnames[depth], (hex(pc), rows, fnames[depth])
            checked += 1
    assert checked >= 10 and trace.meta["stacks"]["symbols"] == "extracted"
    # AND no errors went unreported: every sample without a stack is counted by errno
    failed = [s for s in trace.table("samples").to_pylist() if s["stack_id"] is None]
    assert sum(st["errors"].values()) == len(failed)
    assert all(s["stack_error"] < 0 for s in failed)


def test_a_connects_stack_is_the_samples_row_of_its_socket_row(
        tmp_path: Path, gostacks: Path) -> None:
    # GIVEN the Go program dialing a closed port from main.dialClosed (its own log: tid, times)
    # (200 ms of burn: at 49 Hz about 10 cpu samples, so the "cpu" kind below is there with
    # near certainty; 10 ms gave ~0.5 expected samples and the check failed by chance)
    trace, truth = _run(tmp_path, gostacks, 200)
    assert "refused" in truth["dial_err"]
    pid = truth["pid"]
    conns = [r for r in trace.table("socket").to_pylist()
             if r["pid"] == pid and r["kind"] == "connect" and r["port"] is not None]
    assert len(conns) == 1, conns
    conn = conns[0]
    assert conn["tid"] == truth["dial_tid"]
    assert truth["dial_t0"] <= conn["ts_ns"] <= truth["dial_t1"]
    # THEN exactly one samples row has the socket row's (tid, ts_ns, kind)
    match = [s for s in trace.table("samples").to_pylist()
             if (s["tid"], s["ts_ns"], s["kind"]) == (conn["tid"], conn["ts_ns"], "connect")]
    assert len(match) == 1 and match[0]["pid"] == pid, match
    # AND its stack names the dialing function, under main.main
    names = _symbolise(trace, pid, gostacks)[match[0]["stack_id"]]
    assert "main.dialClosed" in names and "main.main" in names, names
    assert names.index("main.dialClosed") < names.index("main.main")
    # AND the fork that started the program's threads carry stacks too (kind thread)
    kinds = {s["kind"] for s in trace.table("samples").to_pylist() if s["pid"] == pid}
    assert {"cpu", "connect", "thread"} <= kinds, kinds


def test_an_fsyncs_stack_is_the_samples_row_of_its_blockio_row(
        tmp_path: Path, gostacks: Path) -> None:
    # GIVEN the Go program fsyncing a file from main.syncFile, recorded with --sched (the
    # concern whose probes see the fsync family)
    trace, truth = _run(tmp_path, gostacks, 10, "--sched", sync_file=tmp_path / "data")
    assert "sync_err" not in truth
    pid = truth["pid"]
    syncs = [r for r in trace.table("blockio").to_pylist()
             if r["pid"] == pid and r["kind"] == "fsync"]
    assert len(syncs) == 1, syncs
    row = syncs[0]
    assert row["tid"] == truth["sync_tid"]
    assert truth["sync_t0"] <= row["ts_ns"] <= truth["sync_t1"]
    # THEN exactly one samples row has the blockio row's (tid, ts_ns, kind), under syncFile
    match = [s for s in trace.table("samples").to_pylist()
             if (s["tid"], s["ts_ns"], s["kind"]) == (row["tid"], row["ts_ns"], "fsync")]
    assert len(match) == 1, match
    names = _symbolise(trace, pid, gostacks)[match[0]["stack_id"]]
    assert "main.syncFile" in names and "main.main" in names, names


def test_only_targets_are_sampled(tmp_path: Path, gostacks: Path) -> None:
    """A busy process outside the recorded tree gets no samples; one whose executable is
    in the profile (a copy of the workload named etcd) does, though nobody in the tree
    started it."""
    # GIVEN a CPU burner outside the tree, running before and during the recording
    outsider = subprocess.Popen([sys.executable, "-c",
                                 "import time\nt=time.time()\nwhile time.time()-t<30: pass"])
    etcd = tmp_path / "bin" / "etcd"
    etcd.parent.mkdir()
    shutil.copy(gostacks, etcd)
    out = tmp_path / "t"
    try:
        # WHEN recording `sleep 3`, and an "etcd" is started from outside meanwhile
        rec = subprocess.Popen([*K3SPROF, "record", "-o", str(out), "--", "sleep", "3"],
                               stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert rec.stderr is not None
        for line in rec.stderr:
            if "recording to" in line:
                break
        truth_file = tmp_path / "etcd.json"
        subprocess.run([str(etcd), "300", str(free_port()), str(truth_file)], check=True,
                       timeout=60)
        rec.communicate(timeout=60)
        assert rec.returncode == 0
    finally:
        outsider.kill()
        outsider.wait()
    trace = schema.load(out)
    samples = trace.table("samples").to_pylist()
    # THEN the outsider, on a CPU the whole time, has none
    assert not [s for s in samples if s["pid"] == outsider.pid]
    # AND the profile's executable, started outside the tree, was sampled
    etcd_pid = json.loads(truth_file.read_text())["pid"]
    assert [s for s in samples if s["pid"] == etcd_pid and s["kind"] == "cpu"]
    assert trace.meta["stacks"]["profile"] == "k3s"


def test_no_stacks_records_none(tmp_path: Path, gostacks: Path) -> None:
    trace, _ = _run(tmp_path, gostacks, 50, "--no-stacks")
    assert trace.table("samples").num_rows == 0 and "stacks" not in trace.meta
    assert trace.meta["probes"]["stacks"].startswith("unavailable")
    # the events still record, with no stack taken
    assert trace.table("socket").num_rows >= 1


def test_stacks_load_from_the_cache_and_record_the_same(
        tmp_path: Path, gostacks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The perf_event sampler, the stack-trace map and the target maps load from the
    bytecode cache (no BCC) and record what a BCC compile records."""
    monkeypatch.setenv("K3SPROF_BPF_CACHE", str(tmp_path / "cache"))  # empty: BCC compiles
    for run, source in ((0, "bcc"), (1, "cache")):
        d = tmp_path / str(run)
        d.mkdir()
        trace, truth = _run(d, gostacks, 800)
        assert trace.meta["bpf_loaded_from"] == source, trace.meta.get("bpf_cache_note")
        cpu = [s for s in trace.table("samples").to_pylist()
               if s["pid"] == truth["pid"] and s["kind"] == "cpu"]
        expect = truth["cpu_ns"] * 49 / 1e9
        sd = math.sqrt(min((truth["ctx_switches"] + 16) / 4, expect))
        assert abs(len(cpu) - expect) <= 4 * sd + 1, (source, len(cpu), expect)
        names = _symbolise(trace, truth["pid"], gostacks)
        assert any("main.burnCPU" in names[s["stack_id"]] for s in cpu
                   if s["stack_id"] is not None), source
        assert "connect" in {s["kind"] for s in trace.table("samples").to_pylist()}


def test_stacks_whose_bucket_is_taken_come_back_whole_from_the_spill_map(
        tmp_path: Path, gostacks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a stack map of only 16 buckets (--stack-map-entries 16) and a Go program that
    dials once from each of 60 call depths (60 distinct stacks, plus its samples' and the
    runtime's) WHEN recorded THEN the stacks whose bucket was taken are read from the spill map
    (bpf/stacks.bpf.c stack_take): nearly every dial has a stack, and each has exactly as many
    main.dialAtDepth frames as the depth it was made from (go tool addr2line), in order."""
    depths = 60
    monkeypatch.setenv("GOSTACKS_DEPTHS", str(depths))
    trace, truth = _run(tmp_path, gostacks, 50, "--stack-map-entries", "16")
    pid = truth["pid"]
    st = trace.meta["stacks"]
    assert st["spill_base"] == 16 and st["stacks_spilled"] > 0, st
    dials = sorted((s for s in trace.table("samples").to_pylist()
                    if s["pid"] == pid and s["kind"] == "connect"
                    and truth["dial_t0"] <= s["ts_ns"] <= truth["dial_t1"]),
                   key=lambda s: s["ts_ns"])
    assert len(dials) == depths + 1, len(dials)  # the first plain dial, then one per depth
    names = _symbolise(trace, pid, gostacks)
    got = [names[s["stack_id"]].count("main.dialAtDepth") if s["stack_id"] is not None
           else None for s in dials[1:]]
    lost = [k for k, g in zip(range(1, depths + 1), got) if g is None]
    # only a stack that collided in BOTH maps is lost (EEXIST, counted): the spill map holds
    # the ~50 spilled stacks in 4096 buckets, so a second collision is rare
    assert len(lost) <= 3, (lost, st["errors"])
    assert all(s["stack_error"] == -17 for s in dials[1:] if s["stack_id"] is None)
    wrong = [(k, g) for k, g in zip(range(1, depths + 1), got) if g is not None and g != k]
    assert not wrong, wrong
    # the 16-bucket map alone could not have held them: the spill map did
    assert sum(1 for s in dials if s["stack_id"] is not None and s["stack_id"] >= 16) > 30
