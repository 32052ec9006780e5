"""The kernels users run, in VMs: doctor, the recorder against strace, real module loads, the demo.

Each test reads what tests/kernels/guest.py collected inside the VM of one kernel (see
conftest.py); module rows come from real `modprobe` runs on a real distro kernel, not from
hand-packed bytes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from tests.integration.recording import descendants, rows_of
from tests.integration.test_record import _strace_events
from tests.kernels import vm
from tests.kernels.conftest import KERNELS, PROBLEMS, GuestRun, skip_reason, warm_start
from tests.kernels.guest import MODULES
from tracer import schema

pytestmark = pytest.mark.vm
#: the load syscalls: kmod uses finit_module on plain .ko files (Debian's 6.1) and decompresses
#: .ko.xz itself, then calls init_module (Debian's 6.12)
SYSCALLS = ("init_module", "finit_module")


def _ok(run: GuestRun, step: str) -> None:
    s = run.step(step)
    assert s["rc"] == 0, (f"in the VM, `{' '.join(s['argv'])}` exited {s['rc']}:\n"
                          + run.text(f"{step}.err")[-3000:])


def _module_name(insmod_line: str) -> str:
    """`insmod /lib/modules/R/kernel/x/crc32c-intel.ko.xz` -> crc32c_intel (the kernel's name)."""
    base = insmod_line.split()[1].rsplit("/", 1)[-1]
    return re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base).replace("-", "_")


def _lsmod(run: GuestRun, step: str) -> set[str]:
    return {ln.split()[0] for ln in run.text(f"{step}.out").splitlines()[1:] if ln.strip()}


def _modprobe_pids(trace: schema.Trace) -> dict[str, int]:
    """module -> pid of the `modprobe MODULE` exec (the workload runs each once)."""
    proc = trace.table("process")
    execs = proc.filter(pc.equal(proc["kind"], "exec")).to_pylist()
    out: dict[str, int] = {}
    for r in execs:
        argv = r["argv"] or []
        if r["filename"] and r["filename"].endswith("modprobe") and argv and argv[-1] in MODULES:
            out[argv[-1]] = r["pid"]
    return out


def _analyze(trace_dir: Path) -> dict[str, Any]:
    p = subprocess.run([sys.executable, "-m", "tracer", "analyze", "--json", str(trace_dir)],
                       capture_output=True, text=True, timeout=300, cwd=vm.ROOT)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout))


def test_matrix_has_every_series() -> None:
    if skip_reason():
        pytest.skip(skip_reason())
    assert not PROBLEMS, "; ".join(PROBLEMS)
    assert {k.series for k in KERNELS} == set(vm.SERIES)


def test_guest_ran_every_step(guest: GuestRun) -> None:
    assert guest.rc == 0, f"the VM exited {guest.rc} after {guest.seconds:.0f}s"
    assert (guest.out / "steps.json").exists(), "guest.py never started"
    assert guest.step("lsmod-after-demo")


def test_doctor_sees_every_concern_and_the_exact_headers(guest: GuestRun) -> None:
    facts = guest.json("facts.json")
    rel = guest.kernel.release
    assert facts["release"] == rel
    # the kernel's OWN headers package, not a link to another kernel's headers
    assert facts["headers"] == f"/usr/src/linux-headers-{rel}"
    _ok(guest, "doctor")
    doc = json.loads(guest.text("doctor.out"))
    assert doc["ok"] and doc["kernel"] == rel
    checks = {c["name"]: c for c in doc["checks"]}
    bad = [f"{n}: {c['detail']}" for n, c in checks.items() if not c["ok"]]
    assert not bad, f"doctor checks not ok on {rel}: {bad}"
    assert checks["headers"]["detail"] == f"/lib/modules/{rel}/build -> {facts['headers']}"
    # and BCC really compiles with them (Debian's split packages: -common as `source`),
    # not with the kheaders module it falls back to silently
    common = facts["headers"].rsplit("-", 1)[0] + "-common"
    assert checks["headers used by bcc"]["detail"] == f"{common} + {facts['headers']}"
    for flag in ("HAVE_MODULE_TP", "HAVE_INIT_MODULE_SC", "HAVE_EXIT_GROUP",
                 "HAVE_SIGNAL_GENERATE", "HAVE_EXECVEAT"):
        assert checks[f"optional {flag}"]["ok"]
    assert "modules" not in checks  # only present when the kernel has no loadable modules
    assert re.match(r"\d+ tracepoints in", checks["compile+attach"]["detail"])


def test_recorder_sees_every_execve_and_connect_strace_sees(guest: GuestRun) -> None:
    _ok(guest, "record")
    trace = schema.load(guest.out / "witness.trace")
    assert trace.meta["complete"] and trace.meta.get("lost_events", 0) == 0
    assert trace.meta["probes_unavailable"] == {}, "every concern attaches on a distro kernel"
    s_execs, s_connects = _strace_events(guest.out / "strace.log")
    assert len(s_execs) >= 4 and len(s_connects) >= 8, "the witnessed workload did not run"
    pids = descendants(trace, trace.meta["command_pid"])
    t_execs = [(r["filename"], 0) for r in rows_of(trace, "process", pids, kind="exec")]
    t_execs += [(r["filename"], -1) for r in rows_of(trace, "process", pids, kind="exec_failed")]
    for path, ret in s_execs:
        want = (path, 0 if ret == 0 else -1)
        assert want in t_execs, f"strace saw execve {path} = {ret}; trace has {t_execs}"
        t_execs.remove(want)
    t_conn = [(r["endpoint"], int(r["ret"])) for r in rows_of(trace, "socket", pids,
                                                              kind="connect")]
    for target, ret in s_connects:
        match = [c for c in t_conn if c[0] == target and (c[1] == 0) == (ret == 0)]
        assert match, f"strace saw connect {target} = {ret}; trace has {t_conn}"
        t_conn.remove(match[0])


def _expected_chains(guest: GuestRun) -> dict[str, list[str]]:
    """module -> the modules `modprobe MODULE` must load, in order: its --show-depends
    insmod lines minus what was loaded before (lsmod) or by an earlier modprobe."""
    loaded = _lsmod(guest, "lsmod-before")
    chains = {}
    for m in MODULES:
        lines = [ln for ln in guest.text(f"depends-{m}.out").splitlines()
                 if ln.startswith("insmod ")]
        assert lines, f"modprobe --show-depends {m} printed no insmod line"
        chain = [n for n in map(_module_name, lines) if n not in loaded]
        loaded |= set(chain)
        chains[m] = chain
    return chains


def test_module_loads_named_in_dependency_order_by_their_modprobe(guest: GuestRun) -> None:
    _ok(guest, "record")
    trace = schema.load(guest.out / "witness.trace")
    rows = trace.table("module").sort_by("ts_ns").to_pylist()
    chains = _expected_chains(guest)
    # unloading worked for the netfilter modules: their modprobes really load modules
    assert chains["br_netfilter"][-1] == "br_netfilter"
    assert chains["nf_conntrack"][-1] == "nf_conntrack"
    assert _lsmod(guest, "lsmod-after") >= {"br_netfilter", "bridge", "nf_conntrack"}
    by_pid = _modprobe_pids(trace)
    assert set(by_pid) == set(MODULES), f"modprobe execs in the trace: {by_pid}"
    for m in MODULES:
        pid = by_pid[m]
        loads = [r["name"] for r in rows if r["kind"] == "load" and r["pid"] == pid]
        # every load charged to the modprobe that caused it, in --show-depends order
        assert loads == chains[m], f"modprobe {m}: trace {loads}, --show-depends {chains[m]}"
        calls = [r for r in rows if r["kind"] in SYSCALLS and r["pid"] == pid]
        # each module_load pairs with the (f)init_module call that loaded it: named rows
        assert [r["name"] for r in calls if r["ret"] == 0] == chains[m], calls
    assert all(r["name"] for r in rows if r["kind"] in ("load", "free"))


def test_analysis_charges_each_module_to_the_modprobe_and_puts_it_on_the_path(
        guest: GuestRun) -> None:
    _ok(guest, "record")
    trace_dir = guest.out / "witness.trace"
    trace = schema.load(trace_dir)
    by_pid = _modprobe_pids(trace)
    chains = _expected_chains(guest)
    a = _analyze(trace_dir)
    waits = [w for w in a["waits"] if w["kind"] == "module" and w["reason"].startswith("load")]
    for m in MODULES:
        got = [w["endpoint"] for w in waits if w["target"]["pid"] == by_pid[m]]
        assert got == chains[m], f"module waits charged to modprobe {m}: {got}"
    # the waiter is the shell that ran modprobe (modprobe is the helper it waited for)
    assert {w["waiter"]["pid"] for w in waits} == {trace.meta["command_pid"]}
    path = [(s["kind"], s["pid"]) for s in a["critical_path"]]
    for m in ("br_netfilter", "nf_conntrack"):
        assert ("wait:module", by_pid[m]) in path, f"modprobe {m} not on the path: {path}"
    # per modprobe, the modules it loaded (its --show-depends chain), each with the duration
    # of its own (f)init_module call; the path's wait:module segment names them
    loaders = {e["pid"]: e for e in a.get("module_loads", [])}
    for m in MODULES:
        loads = [x for x in loaders.get(by_pid[m], {"loads": []})["loads"] if x["ret"] == 0]
        assert [x["module"] for x in loads] == chains[m], f"module_loads of modprobe {m}"
        assert all(x["duration_ns"] and x["duration_ns"] > 0 for x in loads), loads
    for m in ("br_netfilter", "nf_conntrack"):
        labels = [s["label"] for s in a["critical_path"]
                  if s["kind"] == "wait:module" and s["pid"] == by_pid[m]]
        assert labels and all(lb.endswith("loaded " + ", ".join(chains[m])) for lb in labels), \
            labels


def test_demo_modprobes_load_modules(guest: GuestRun) -> None:
    _ok(guest, "demo")
    before = _lsmod(guest, "lsmod-before-demo")
    assert not before & {"br_netfilter", "nf_conntrack"}, "modules were not unloaded"
    assert _lsmod(guest, "lsmod-after-demo") >= {"br_netfilter", "nf_conntrack"}
    trace = schema.load(guest.out / "demo" / "demo.trace")
    rows = trace.table("module").to_pylist()
    loads = {r["name"] for r in rows if r["kind"] == "load"}
    assert loads >= {"br_netfilter", "bridge", "nf_conntrack"}
    calls = [r for r in rows if r["kind"] in SYSCALLS and r["ret"] == 0]
    assert calls and all(r["name"] for r in calls)
    by_pid = _modprobe_pids(trace)
    a = guest.json("demo/analysis.json")
    # every kind the path gives each pid (with scheduler data a modprobe's stretch is split:
    # the wakeup that started it, its module load, the wakeup of its parent at its exit)
    kinds: dict[int, set[str]] = {}
    for s in a["critical_path"]:
        kinds.setdefault(s["pid"], set()).add(s["kind"])
    for m in ("br_netfilter", "nf_conntrack"):
        assert "wait:module" in kinds.get(by_pid[m], set()), \
            f"demo's modprobe {m} not on the path as a module wait: {kinds.get(by_pid[m])}"


def test_sched_concern_records_and_classifies_a_planted_spin_sleep_fsync(
        guest: GuestRun) -> None:
    """The scheduler concern on a distro kernel: available with every optional tracepoint
    family, its three tables filled, its health counted, and the planted workload
    (tests/kernels/sched_planted.py) classified against the workload's own clocks."""
    from tracer.analyzer.sched import SchedIndex

    _ok(guest, "record")
    trace = schema.load(guest.out / "witness.trace")
    assert trace.meta["probes"]["sched"] == "attached"
    for flag in ("HAVE_SCHED_IRQ", "HAVE_SCHED_HRTIMER", "HAVE_SCHED_BLOCK"):
        assert f"-D{flag}" in trace.meta["cflags"], f"{flag} missing on {guest.kernel.release}"
    for table in ("sched", "wakeup", "blockio"):
        assert trace.table(table).num_rows, f"no {table} rows"
    sched = trace.meta["sched"]
    assert set(sched["repairs"]) >= {"repaired_sum", "repaired_overlap", "lost_holes"}
    assert all(isinstance(v, int) and v >= 0 for v in sched["repairs"].values())
    assert set(sched["missed_switches"]) == {"switch_out", "switch_in"}
    assert all(isinstance(v, int) and v >= 0 for v in sched["missed_switches"].values())
    truth = guest.json("sched-truth.json")
    pid = truth["pid"]
    ix = SchedIndex.from_trace(trace)
    spin, sleep, fsync = truth["spin"], truth["sleep"], truth["fsync"]
    st = ix.states_between(pid, spin["t0"], spin["t1"])
    assert sum(st.values()) == spin["t1"] - spin["t0"]  # exact
    assert abs(st["cpu"] - spin["cpu_ns"]) <= 0.10 * spin["cpu_ns"], (st, spin)
    st = ix.states_between(pid, sleep["t0"], sleep["t1"])
    # the span split as the kernel's sched_info counted it (sched_planted.py): the thread's
    # wait for a CPU after the timer fired is runqueue, the rest of its time off the CPU sleep
    span = sleep["t1"] - sleep["t0"]
    assert abs(st["runqueue"] - sleep["run_delay_ns"]) <= 0.05 * span, (st, sleep)
    assert st["sleep"] >= 0.85 * (span - sleep["cpu_ns"] - sleep["run_delay_ns"]), (st, sleep)
    waker = ix.waker_at(pid, sleep["t1"], max_lag_ns=50_000_000)  # TCG is slow to resume
    assert waker is not None and waker.kind == "timer", waker
    rows = [r for r in trace.table("blockio").to_pylist()
            if r["kind"] == "fsync" and r["pid"] == pid]
    assert len(rows) == 1, rows
    assert fsync["t0"] <= rows[0]["ts_ns"] <= rows[0]["end_ns"] <= fsync["t1"], (rows, fsync)


def test_second_recording_loads_from_the_cache_the_first_filled(guest: GuestRun) -> None:
    """The warm start: the witness recording began with an empty bytecode cache, so BCC
    compiled and filled it; a second recording with the same options loads from it (no BCC,
    no LLVM) and its probes see a workload running while it starts. How long that took is a
    reported figure (results.md: warm start), not asserted: TCG's speed is the host's load."""
    _ok(guest, "record")
    _ok(guest, "record-warm")
    cold = schema.load(guest.out / "witness.trace").meta
    assert cold["bpf_loaded_from"] == "bcc", "the first recording must start from an empty cache"
    assert "bpf_cache_note" not in cold, cold.get("bpf_cache_note")  # and it filled the cache
    w = warm_start(guest)
    meta = w["meta"]
    assert w["loaded_from"] == "cache", meta.get("bpf_cache_note")
    assert meta["cflags"] == cold["cflags"] and meta["probes"] == cold["probes"]
    assert meta["complete"] and meta.get("lost_events", 0) == 0
    # the prober connected every 10 ms from before the spawn to 1 s after the `recording`
    # line: the probes saw it (the first rows may precede meta start_ns, the moment the LAST
    # probe was attached: the connect probe can be attached before it)
    assert w["prober_rows"] > 0, "the warm recording saw none of the prober's connects"
    assert w["first_ns"] >= w["spawn_ns"]
    # each connect is stamped on the prober's own clock, after the time it wrote in the path
    late = [(sent, seen) for sent, seen in w["sent_seen"] if seen < sent]
    assert not late, f"connects stamped before they were sent: {late[:5]}"
