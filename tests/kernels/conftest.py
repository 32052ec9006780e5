"""The kernel matrix (`make test-kernels`): one VM per kernel plus the systemd VM, all started
at once by the session's Fleet; each kernel's tests wait for its VM.

The VM runs tests/kernels/guest.py, which only collects evidence into
reports/kernels/<release>/ (console log, doctor JSON, a trace, strace log, ...); the tests
here assert on it. A failing test shows the tail of that kernel's in-VM console log; the
end of the session prints one PASS/FAIL line per kernel and writes the results table
(reports/kernels/results.md, .json) that docs/kernels.md quotes.

K3SPROF_SKIP_KERNELS=1 skips the matrix locally; in CI (CI=true) it is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kernels import vm

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
OUT = Path(os.environ.get("K3SPROF_KERNELS_OUT", vm.ROOT / "reports" / "kernels"))
#: all VMs side by side under TCG take ~4-8 min; past this they are killed and fail
VM_TIMEOUT_S = 1800

KERNELS, PROBLEMS = vm.matrix()


def skip_reason() -> str | None:
    if os.environ.get("K3SPROF_SKIP_KERNELS") == "1" and not IN_CI:
        return "K3SPROF_SKIP_KERNELS=1"
    if os.geteuid() != 0 and not IN_CI:
        return "needs root (run: sudo make test-kernels)"
    return None


@dataclass
class GuestRun:
    kernel: vm.Kernel
    out: Path
    console: Path
    rc: int | None = None
    seconds: float = 0.0
    accel: str = ""
    outcomes: dict[str, str] = field(default_factory=dict)

    def json(self, name: str) -> Any:
        return json.loads((self.out / name).read_text())

    def text(self, name: str) -> str:
        return (self.out / name).read_text(errors="replace")

    def step(self, name: str) -> dict[str, Any]:
        for s in self.json("steps.json"):
            if s["name"] == name:
                return dict(s)
        raise AssertionError(f"the guest never ran step {name!r}:\n{vm.tail(self.console)}")


RUNS: dict[str, GuestRun] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kernel" in metafunc.fixturenames:
        metafunc.parametrize("kernel", KERNELS, ids=[k.id for k in KERNELS], scope="module")


def stage_gok3s(cache: Path) -> Path:
    """The demo's gok3s binaries (built by setup into the host's Go build cache) copied to where
    the VMs can read them: the guests see the host's file system, but not its /var/cache (seen:
    the guest's demo found no binary there, built gok3s under TCG and hit its 600 s timeout).
    Returns the cache directory the guests' demo is pointed at (K3SPROF_GO_CACHE)."""
    from tracer.demo import gobuild

    for tc in gobuild.available_toolchains():
        binary = gobuild.build_gok3s(tc)  # setup built it: a cache hit
        dst = cache / "gok3s" / binary.parent.name / binary.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, dst)
    return cache


class Fleet:
    """Every VM of the session, started AT ONCE (one vCPU each): BCC's compile, the longest
    step in a VM, is single-threaded, so VMs side by side use both host cores where one
    2-vCPU VM leaves one idle. Tests wait for the VM they need."""

    def __init__(self, kernels: list[vm.Kernel], systemd: bool) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + VM_TIMEOUT_S
        self.procs: dict[str, Any] = {}
        self.systemd: Future[Any] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1)
        go_cache = stage_gok3s(OUT / "go-cache")
        for k in kernels:
            out = OUT / k.release
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            run = GuestRun(k, out / "guest", out / "console.log")
            run.accel, why = vm.accel()
            print(f"\n[kernels] {k.release}: booting ({run.accel}: {why})", flush=True)
            guest_py = vm.ROOT / "tests" / "kernels" / "guest.py"
            p = vm.start_vng(k, f"{vm.ROOT}/.venv/bin/python {guest_py} {run.out} {go_cache}",
                             out, run.console)
            self.procs[k.release] = (p, run)
        if systemd:
            from tests.kernels import systemd_vm

            self.systemd = self._pool.submit(systemd_vm.two_boots, OUT / "systemd")

    def guest(self, kernel: vm.Kernel) -> GuestRun:
        p, run = self.procs[kernel.release]
        if run.rc is None and not run.seconds:
            run.rc = vm.finish(p, self.deadline)
            run.seconds = time.monotonic() - self.t0
            print(f"\n[kernels] {kernel.release}: VM exited {run.rc} after {run.seconds:.0f}s",
                  flush=True)
            RUNS[kernel.release] = run
        return run

    def close(self) -> None:
        for p, _ in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def fleet(request: pytest.FixtureRequest) -> Iterator[Fleet]:
    why = skip_reason()
    if why:
        pytest.skip(why)
    items = request.session.items
    releases = {it.callspec.params["kernel"].release for it in items
                if hasattr(it, "callspec") and "kernel" in it.callspec.params}
    systemd = any(it.module.__name__.endswith("test_systemd_boot") for it in items
                  if it.module is not None)
    f = Fleet([k for k in KERNELS if k.release in releases], systemd)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture(scope="module")
def guest(kernel: vm.Kernel, fleet: Fleet) -> GuestRun:
    """The evidence guest.py collected in `kernel`'s VM (booted once per session)."""
    return fleet.guest(kernel)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    kernel = getattr(item, "callspec", None) and item.callspec.params.get("kernel")
    if kernel is None or rep.when != "call":
        return
    run = RUNS.get(kernel.release)
    if run is None:
        return
    run.outcomes[item.originalname] = rep.outcome
    if rep.failed:
        rep.sections.append((f"in-VM console log of {kernel.release} (tail; whole file: "
                             f"{run.console})", vm.tail(run.console, 80)))


def warm_start(run: GuestRun) -> dict[str, Any]:
    """The second recording's start, timed from outside (tests/kernels/start_probe.py) and
    read back from its trace: seconds from spawn to the first prober connect in the trace
    (the probes really live), to the `recording` line, and the trace's own figures."""
    import pyarrow.compute as pc

    from tracer import schema

    probe = run.json("warm-start.json")
    t = schema.load(run.out / "warm.trace")
    sock = t.table("socket")
    mine = sock.filter(pc.starts_with(sock["addr"], probe["prefix"]))
    first_ns = pc.min(mine["ts_ns"]).as_py() if mine.num_rows else None
    spawn = probe["spawn_ns"]
    return {
        "first_event_s": round((first_ns - spawn) / 1e9, 2) if first_ns else None,
        "line_s": round((probe["line_ns"] - spawn) / 1e9, 2) if probe["line_ns"] else None,
        "attach_s": round(float(t.meta["attach_s"]), 2),
        "load_s": round(float(t.meta["compile_s"]), 2),
        "loaded_from": t.meta.get("bpf_loaded_from"),
        "prober_rows": mine.num_rows,
        # (the send time the prober wrote into the path, the trace's time of that connect)
        "sent_seen": [(int(a[len(probe["prefix"]):]), ts) for a, ts in
                      zip(mine["addr"].to_pylist(), mine["ts_ns"].to_pylist(), strict=True)],
        "spawn_ns": spawn,
        "start_ns": t.meta["start_ns"],
        "first_ns": first_ns,
        "meta": t.meta,
    }


def _facts(run: GuestRun) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kernel": run.kernel.release, "accel": run.accel, "vm_s": round(run.seconds, 1),
        "tests": run.outcomes,
        "result": ("PASS" if run.outcomes and all(v == "passed" for v in run.outcomes.values())
                   else "FAIL"),
    }
    try:
        from tracer import schema

        t = schema.load(run.out / "witness.trace")
        row["attach_s"] = round(float(t.meta["attach_s"]), 1)
        row["compile_s"] = round(float(t.meta["compile_s"]), 1)
        row["lost_events"] = t.meta.get("lost_events", 0)
        row["events"] = {n: t.table(n).num_rows for n in ("process", "socket", "module")}
        d = schema.load(run.out / "demo" / "demo.trace")
        row["demo_events"] = {n: d.table(n).num_rows for n in ("process", "socket", "module")}
        row["demo_s"] = run.step("demo")["seconds"]
        w = warm_start(run)
        row["warm"] = {k: w[k] for k in ("first_event_s", "line_s", "load_s", "loaded_from")}
    except Exception as e:  # the table still gets a row, saying what is missing
        row["error"] = f"{type(e).__name__}: {e}"
    return row


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RUNS:
        return
    rows = [_facts(r) for r in RUNS.values()]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))
    from bench.render import kernels_table

    delay = OUT / "systemd" / "delay.json"
    boots = json.loads(delay.read_text())["boots"] if delay.exists() else []
    lines = [
        f"Kernel matrix, {time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"`make test-kernels` on {os.uname().nodename} ({os.cpu_count()} CPUs)",
        "",
        kernels_table(rows, boots),
    ]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    tr = terminalreporter
    tr.section("kernel matrix")
    for r in rows:
        failed = [k for k, v in r["tests"].items() if v != "passed"]
        tr.write_line(f"{r['result']} {r['kernel']} ({r['accel']}, VM {r['vm_s']}s)"
                      + (f": failed {', '.join(failed)}" if failed else ""))
    for b in boots:
        tr.write_line(f"systemd boot {b['boot']}: k3s.service held {b['k3s_held_s']} s by "
                      f"k3sprof-boot (its start -> READY {b['unit_start_to_ready_s']} s)")
    tr.write_line(f"table: {OUT / 'results.md'} (docs: python -m bench.render --import-kernels "
                  f"{OUT})")
