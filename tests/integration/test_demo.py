"""The demo: its supervisor (real etcd, containerd, modprobe, iptables, CNI) and the recorded run.

Supervisor-only tests are marked `root`; the recorded end-to-end run is marked `bpf`.
Leftover checks are scoped to THIS test's supervisor (its pid names its namespaces and dir),
because other demos may run on the same machine at the same time.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_report_browser import chromium, figure_markup
from tracer import schema
from tracer.cli import main
from tracer.demo import run
from tracer.demo import supervisor as sup
from tracer.demo.run import DemoResult, run_demo

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


@pytest.fixture
def workdir() -> Iterator[Path]:
    # not tmp_path: pytest's paths are too long for containerd's unix socket (108 bytes)
    d = Path(tempfile.mkdtemp(prefix="kdemo-", dir="/tmp"))
    yield d
    sup.sweep_stale(d)
    for p in d.iterdir():
        raise AssertionError(f"test left {p}")
    d.rmdir()


def start(workdir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            PY,
            "-m",
            "tracer.demo.supervisor",
            "--workdir",
            str(workdir),
            "--daemon-output",
            "file",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(p: subprocess.Popen[str], marker: str, limit_s: float = 60) -> str:
    """Output up to the first line containing marker (fails if the run ends first).

    Reads the pipe's fd directly: a buffered readline() would hide lines from select().
    """
    assert p.stdout is not None
    fd = p.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            text = buf.decode(errors="replace")
            if marker in text:
                return text
    p.kill()
    raise AssertionError(f"never saw {marker!r}; output:\n{buf.decode(errors='replace')}")


def daemon_pids(output: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"(etcd|containerd) pid (\d+)", output)}


def alive(pid: int) -> bool:
    """True while pid runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], limit_s: float = 10) -> list[int]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def leftovers(owner: int, workdir: Path) -> list[str]:
    """Everything a supervisor with pid `owner` could have left on the host."""
    found = []
    if sup.NETNS_DIR.is_dir():
        found += [
            str(p) for p in sup.NETNS_DIR.iterdir() if p.name.startswith(f"{sup.PREFIX}-{owner}-")
        ]
    found += [str(p) for p in workdir.iterdir()]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and alive(int(proc.name)):
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if f"/{sup.PREFIX}-{owner}-".encode() in cmd:
                found.append(f"process {proc.name}: {cmd[:80]!r}")
    return found


HOST_PATHS = (Path("/var/lib/cni"), Path("/run/xtables.lock"), Path("/run/netns"))


@pytest.mark.root
def test_supervisor_runs_end_to_end_twice_and_leaves_nothing(workdir: Path) -> None:
    # GIVEN the host's state before
    before = {p: p.exists() for p in HOST_PATHS}
    for _run in range(2):
        # WHEN the supervisor runs to completion
        p = start(workdir)
        out, _ = p.communicate(timeout=120)
        # THEN every step ran with the real programs, in k3s's order, and it declared ready
        assert p.returncode == 0, out
        steps = re.findall(r"\] (.+?): done in", out)
        assert [s.split(":")[0] for s in steps] == [
            "datastore",
            "datastore",
            "kernel modules",
            "container runtime",
            "container runtime",
            "network",
            "network",
            "network",
        ], out
        assert sup.READY_TEXT in out
        etcd = re.search(r"healthy after (\d+) polls", out)
        assert etcd and int(etcd[1]) >= 2, out  # etcd cannot answer 2 ms after its exec
        ctrd = re.search(r"after (\d+) connect\(\) attempts", out)
        assert ctrd and int(ctrd[1]) >= 2, out  # first attempt: the socket file is not there yet
        assert "is healthy: successfully committed proposal" in out  # etcdctl, the Go client
        assert re.search(r"eth0 10\.42\.0\.\d+/24 on bridge cni0", out), out
        assert re.search(r"node links: cni0, veth\w+", out), out
        for mod in sup.MODULES:
            assert re.search(rf"{mod} (loaded|failed)", out), out
        # AND nothing is left: daemons, namespaces, dirs, host files
        owner = int(re.search(r"supervisor pid (\d+)", out)[1])  # type: ignore[index]
        assert not wait_gone(list(daemon_pids(out).values()))
        assert leftovers(owner, workdir) == []
        for path, existed in before.items():
            if not existed and path != Path("/run/netns"):  # other tests may make /run/netns
                assert not path.exists(), f"demo created {path} on the host"


@pytest.mark.root
def test_etcd_election_timeout_reaches_etcd(workdir: Path) -> None:
    """--etcd-election-timeout (bench/whatif_demo.py holds etcd's election draw small with it):
    etcd itself reports the ticks it took from the flags, in its fast-forward line, where its
    defaults (1000 ms / 100 ms) would say 900ms."""
    p = start(workdir, "--daemon-output", "inherit", "--etcd-election-timeout", "50")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    line = next((x for x in out.splitlines() if "fast-forwarding election ticks" in x), "")
    assert '"forward-duration":"45ms"' in line and '"election-ticks":10' in line, line
    assert leftovers(int(re.search(r"supervisor pid (\d+)", out)[1]),  # type: ignore[index]
                     workdir) == []


@pytest.mark.root
@pytest.mark.parametrize(
    ("marker", "sig", "rc"),
    [
        ("etcd pid", signal.SIGTERM, 128 + signal.SIGTERM),  # mid etcd wait
        (sup.READY_TEXT, signal.SIGINT, 128 + signal.SIGINT),  # daemons up, namespaces made
    ],
)
def test_stop_signal_midway_tears_everything_down(
    workdir: Path, marker: str, sig: int, rc: int
) -> None:
    p = start(workdir, "--hold", "60")
    out = read_until(p, marker)
    owner = p.pid
    pids = list(daemon_pids(out).values())
    assert pids, out
    if marker == sup.READY_TEXT:
        assert len(leftovers(owner, workdir)) >= 5, "expected 2 netns, 1 dir, 2 daemons while up"
    p.send_signal(sig)
    rest, _ = p.communicate(timeout=60)
    assert p.returncode == rc, out + rest
    assert "tearing down" in rest and "teardown done" in rest
    assert not wait_gone(pids)
    assert leftovers(owner, workdir) == []


@pytest.mark.root
def test_sigkill_leaves_no_daemons_and_the_next_start_sweeps_the_rest(workdir: Path) -> None:
    # GIVEN a supervisor that is up (daemons running, namespaces made)
    p = start(workdir, "--hold", "60")
    out = read_until(p, sup.READY_TEXT)
    owner = p.pid
    pids = list(daemon_pids(out).values())
    # WHEN it is SIGKILLed (no chance to tear down)
    p.kill()
    p.communicate(timeout=10)
    # THEN PR_SET_PDEATHSIG killed its daemons
    assert not wait_gone(pids), "daemons outlived a SIGKILLed supervisor"
    left = leftovers(owner, workdir)
    assert any("-node" in x for x in left) and any("-pod" in x for x in left), left
    # AND the next start removes the namespaces and dir, then runs normally
    p2 = start(workdir)
    out2, _ = p2.communicate(timeout=120)
    assert p2.returncode == 0, out2
    assert f"removed leftover netns {sup.PREFIX}-{owner}-node" in out2
    assert f"removed leftover netns {sup.PREFIX}-{owner}-pod" in out2
    assert leftovers(owner, workdir) == []
    assert leftovers(p2.pid, workdir) == []


@pytest.mark.root
def test_sweep_spares_a_live_supervisor(workdir: Path) -> None:
    # a second demo running at the same time must not lose its namespaces to our sweep
    p = start(workdir, "--hold", "60")
    read_until(p, sup.READY_TEXT)
    done = sup.sweep_stale(workdir)
    assert not any(str(p.pid) in d for d in done), done
    assert len(leftovers(p.pid, workdir)) >= 5
    p.terminate()
    p.communicate(timeout=60)
    assert leftovers(p.pid, workdir) == []


# --- the recorded demo (run_demo) ------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, list[str]]:
    """One real `k3sprof demo` run: (result, progress lines)."""
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(out, lines.append)
    return result, lines


def _ours(trace: schema.Trace, sup_pid: int) -> set[int]:
    """The supervisor's process tree (the trace is system-wide: other work runs meanwhile)."""
    proc = trace.table("process").to_pylist()
    tree = {sup_pid}
    for r in sorted(proc, key=lambda r: r["ts_ns"]):
        if r["kind"] == "fork" and r["ppid"] in tree:
            tree.add(r["pid"])
    return tree


@pytest.mark.bpf
def test_demo_trace_holds_the_workload_exactly_as_it_ran(
    demo_run: tuple[DemoResult, list[str]],
) -> None:
    result, lines = demo_run
    text = "\n".join(lines)
    facts = result.facts
    assert {"supervisor_pid", "etcd_endpoint", "containerd_endpoint", "ready_ns"} <= set(facts), (
        text
    )
    # progress is visible: the recorder going live and every supervisor step, with elapsed time
    assert re.search(r"^\[\s*\d+\.\ds\]\s+k3sprof: recording", text, re.M), text
    assert re.search(r"^\[\s*\d+\.\ds\]\s+demo node is ready", text, re.M), text
    trace = schema.load(result.trace_dir)
    assert trace.lost_events == 0
    sup_pid = facts["supervisor_pid"]
    tree = _ours(trace, sup_pid)
    execs = [
        r for r in trace.table("process").to_pylist() if r["kind"] == "exec" and r["pid"] in tree
    ]
    names = [Path(r["filename"] or "").name for r in execs]
    for prog in ("etcd", "etcdctl", "containerd", "ctr", "bridge", "host-local", "loopback"):
        assert prog in names, names
    assert names.count("modprobe") == len(sup.MODULES)
    assert names.count("iptables") >= 5  # ours, plus the bridge plugin's ipMasq rules (go-iptables)
    sock = [r for r in trace.table("socket").to_pylist() if r["pid"] in tree]
    # etcd: the supervisor's connects to etcd's client port are exactly its health polls;
    # the first is refused (before etcd's listen), the last ones are accepted after it
    polls = int(re.search(r"healthy after (\d+) polls", text)[1])  # type: ignore[index]
    etcd_conn = [
        r
        for r in sock
        if r["kind"] == "connect"
        and r["pid"] == sup_pid
        and r["endpoint"] == facts["etcd_endpoint"]
    ]
    assert len(etcd_conn) == polls
    assert etcd_conn[0]["outcome"] == "refused" and etcd_conn[-1]["outcome"] == "ok"
    listen = [r for r in sock if r["kind"] == "listen" and r["endpoint"] == facts["etcd_endpoint"]]
    assert len(listen) == 1 and etcd_conn[0]["ts_ns"] < listen[0]["ts_ns"] < etcd_conn[-1]["ts_ns"]
    # containerd: connect() to the unix socket, ENOENT until it exists, then ok
    attempts = int(re.search(r"after (\d+) connect\(\) attempts", text)[1])  # type: ignore[index]
    ctrd = [
        r
        for r in sock
        if r["kind"] == "connect"
        and r["pid"] == sup_pid
        and r["endpoint"] == facts["containerd_endpoint"]
    ]
    assert len(ctrd) == attempts
    assert ctrd[0]["outcome"] == "enoent" and ctrd[-1]["outcome"] == "ok"
    # readiness: printed with CLOCK_MONOTONIC, then READY=1 sent (a connect the trace shows)
    ready = [
        r
        for r in sock
        if r["kind"] == "connect"
        and r["pid"] == sup_pid
        and (r["endpoint"] or "").endswith("/ready.sock")
    ]
    assert len(ready) == 1 and ready[0]["outcome"] == "ok"
    assert 0 < ready[0]["ts_ns"] - facts["ready_ns"] < 1_000_000_000


@pytest.mark.bpf
def test_demo_analysis_finds_the_etcd_and_containerd_waits(
    demo_run: tuple[DemoResult, list[str]],
) -> None:
    result, _lines = demo_run
    analysis = result.analysis
    assert analysis is not None
    waits = run.demo_waits(analysis.waits, result.facts)
    trace = schema.load(result.trace_dir)
    sock = trace.table("socket").to_pylist()
    sup_pid = result.facts["supervisor_pid"]
    for name in ("etcd", "containerd"):
        ep = result.facts[f"{name}_endpoint"]
        w = waits.get(name)
        assert w is not None, f"no wait on {name} ({ep}) in {analysis.waits}"
        conns = [
            r
            for r in sock
            if r["kind"] == "connect" and r["pid"] == sup_pid and r["endpoint"] == ep
        ]
        first_ok = next(r for r in conns if r["outcome"] == "ok")
        listen = next(r for r in sock if r["kind"] == "listen" and r["endpoint"] == ep)
        # ground truth from the trace's own rows: when it listened, when the poller got through
        assert w["ready_ns"] == listen["ts_ns"]
        # the first ok connect: its attempt, or its answer (a few us later), are both honest
        assert w["first_ok_ns"] in (first_ok["ts_ns"], first_ok["outcome_ns"])
        assert w["lag_ns"] == w["first_ok_ns"] - listen["ts_ns"]
        assert w["first_attempt_ns"] == conns[0]["ts_ns"]
        assert w["attempts"] is not None and w["attempts"] >= 2
    # the critical path is contiguous and sums exactly to the total
    path = analysis.critical_path
    assert path and analysis.end_reached and analysis.end_ns is not None
    assert sum(s["end_ns"] - s["start_ns"] for s in path) == analysis.total_ns
    assert all(a["end_ns"] == b["start_ns"] for a, b in itertools.pairwise(path))
    assert analysis.end_ns - analysis.start_ns == analysis.total_ns
    html = result.html
    assert html is not None and html.stat().st_size > 10_000
    assert (result.out_dir / "analysis.json").exists()


@pytest.mark.bpf
def test_demo_also_records_gok3s_against_its_truth(
    demo_run: tuple[DemoResult, list[str]],
) -> None:
    """The Go stand-in's part (docs/gok3s.md): recorded, analyzed and reported beside the
    Python stand-in; the trace agrees with gok3s's own truth log (the full comparison is
    tests/integration/test_gok3s.py)."""
    result, lines = demo_run
    text = "\n".join(lines)
    g = result.gok3s
    assert g is not None and g.truth is not None and g.analysis is not None, text
    t = g.truth
    assert result.facts["gok3s_pid"] == t.pid and t.exit_ns is not None
    assert "k3s is up and running" in text and "In this run (gok3s-truth.jsonl" in text
    trace = schema.load(g.trace_dir)
    assert trace.lost_events == 0
    proc = trace.table("process").to_pylist()
    assert [r["filename"] for r in proc if r["kind"] == "exec" and r["pid"] == t.pid] == [
        str(g.binary)
    ]
    for e in t.execs:  # the helpers gok3s ran, with the pids it logged
        ex = [r for r in proc if r["kind"] == "exec" and r["pid"] == e.child_pid]
        assert len(ex) == 1 and ex[0]["argv"] == e.argv, (e, ex)
    port = t.polls[0].port
    connects = [
        r
        for r in trace.table("socket").to_pylist()
        if r["kind"] == "connect" and r["pid"] == t.pid and r["port"] == port
    ]
    assert len(connects) == len(t.polls) >= 2
    # its analysis (the k3s profile: the binary is named k3s) reached gok3s's READY=1
    a = g.analysis
    assert a.end_reached and a.profile == "k3s"
    assert sum(s["end_ns"] - s["start_ns"] for s in a.critical_path) == a.total_ns
    assert g.html is not None and g.html.stat().st_size > 10_000
    for name in ("gok3s-analysis.json", "gok3s-analysis.txt", "gok3s-truth.jsonl"):
        assert (result.out_dir / name).exists(), name


@pytest.mark.bpf
@pytest.mark.browser
def test_demo_gok3s_report_shows_components_on_the_path_and_the_flame_graph(
    demo_run: tuple[DemoResult, list[str]], tmp_path: Path
) -> None:
    """Issue 23's last "Done when": the demo's gok3s report, opened in headless chromium,
    shows the flame graph of the window's samples, with a menu entry per critical-path segment
    (the segments of gok3s whose components hold kube-apiserver among them), and the component
    lanes; the analysis behind it carries the segments' components (default recorder, stacks
    on, no --sched)."""
    result, _lines = demo_run
    g = result.gok3s
    assert g is not None and g.analysis is not None and g.html is not None
    a = g.analysis
    # the analysis: a path segment of gok3s's process with kube-apiserver's on-CPU time in it
    on_path = [
        s
        for s in a.critical_path
        if (s.get("components_of") or {}).get("pid") == result.facts["gok3s_pid"]
        and (s.get("components") or {}).get("kube-apiserver", 0) > 0
    ]
    assert on_path, [(s["kind"], s.get("components")) for s in a.critical_path]
    # the report's view of them: the flame graph's menu has each such segment's own stacks
    # (the "by component" table charges a wait segment to its waiter, k3s: not checked here)
    page = g.html.read_text()
    pid = result.facts["gok3s_pid"]
    index = {id(s): i for i, s in enumerate(a.critical_path)}
    for s in on_path:
        label = f'"label":"#{index[id(s)]} {s["kind"]} k3s[{pid}] '
        assert label in page, (label, re.findall(r'"label":"#[^"]*"', page))
    st = a.sections.get("stacks")
    assert st and st["folded"] and st["cpu_samples"] > 0
    # the page, rendered
    p = chromium(tmp_path, g.html, "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    html, stderr = p.stdout, p.stderr
    assert not [x for x in stderr.splitlines() if "Uncaught" in x], stderr[-2000:]
    stacks = html[html.index('<section id="stacks">') :]
    stacks = stacks[: stacks.index("</section>")]
    flame = figure_markup(stacks, "fig-flame")
    assert "js-plotly-plot" in flame[:300], "plotly did not take over the flame graph's div"
    # an icicle draws one <g class="slice ..."> per visible frame: the window's root, the
    # process, and frames below it
    assert len(re.findall(r'class="slice[ "]', flame)) >= 3, flame[:3000]
    assert "hashOpenAPISpec" in flame or "(truncated)" in flame
    lanes = figure_markup(stacks, "fig-component-lanes")
    assert "js-plotly-plot" in lanes[:300] and 'class="main-svg"' in lanes
    # the component lanes are drawn with kube-apiserver's runs among them
    assert "kube-apiserver" in lanes, lanes[:3000]


def _owner(scratch: Path) -> int | None:
    try:
        return int((scratch / "owner").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.bpf
@pytest.mark.parametrize("marker", ["etcd pid", "containerd pid"])
def test_ctrl_c_during_the_demo_leaves_nothing_behind(tmp_path: Path, marker: str) -> None:
    # GIVEN `k3sprof demo` running in its own session, as in a terminal
    p = subprocess.Popen(
        [PY, "-m", "tracer", "demo", "-o", str(tmp_path / "out")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = read_until(p, marker)
    owner = int(re.search(r"supervisor pid (\d+)", out)[1])  # type: ignore[index]
    pids = list(daemon_pids(out).values())
    # WHEN Ctrl-C reaches the whole foreground process group (demo, recorder, supervisor)
    os.killpg(p.pid, signal.SIGINT)
    rest, _ = p.communicate(timeout=60)
    # THEN it says so, exits 130, and the supervisor tore everything down
    assert p.returncode == 130, out + rest
    assert "interrupted" in rest and "teardown done" in rest, rest
    assert not wait_gone(pids)
    assert [d for d in Path("/tmp").glob("k3sprof-run-*") if _owner(d) == p.pid] == []
    leftover_ns = (
        [n for n in os.listdir(sup.NETNS_DIR) if f"-{owner}-" in n]
        if sup.NETNS_DIR.is_dir()
        else []
    )
    assert leftover_ns == []


FAKE_K3S = """#!{python}
# A stand-in for `k3s server` (no k3s binary exists here): starts, listens late, runs until stopped.
import signal, socket, sys, time
assert sys.argv[1:] == ["server"], sys.argv
time.sleep(0.3)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen()
signal.sigwait({{signal.SIGTERM}})
"""


@pytest.mark.bpf
def test_demo_k3s_records_k3s_server_until_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a `k3s` on PATH (a stand-in that listens late, like the scheduler's 10259)
    port = sup.free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "k3s"
    fake.write_text(FAKE_K3S.format(python=PY, port=port))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    lines: list[str] = []
    # WHEN the demo runs in k3s mode
    result = run_demo(tmp_path / "out", lines.append, k3s=True, k3s_until=f"listen:{port}")
    # THEN it recorded `k3s server` until the listen, and analyzed it with the k3s profile
    text = "\n".join(lines)
    assert f"stopped: until listen:{port}" in text, text
    trace = schema.load(result.trace_dir)
    assert result.trace_dir.name == "k3s-server.trace"
    execs = [
        r
        for r in trace.table("process").to_pylist()
        if r["kind"] == "exec" and r["filename"] == str(fake)
    ]
    assert len(execs) == 1 and execs[0]["argv"][-1] == "server"
    listens = [
        r for r in trace.table("socket").to_pylist() if r["kind"] == "listen" and r["port"] == port
    ]
    assert [r["pid"] for r in listens] == [execs[0]["pid"]]
    assert result.analysis is not None and result.analysis.profile == "k3s"
    assert result.html is not None and result.html.exists()


# --- the CLI --------------------------------------------------------------------------------


def test_demo_k3s_without_k3s_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no k3s anywhere (true here anyway)
    rc = main(["demo", "--k3s", "-o", "/nonexistent/out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and "k3s is not installed" in err[0], err
    assert not Path("/nonexistent/out").exists()


def test_demo_waits_picks_the_supervisors_own_waits() -> None:
    # the trace is system-wide: a stranger's wait on the same endpoint must not be reported
    from tests.builders import ms, trace
    from tracer.analyzer import analyze

    facts = {
        "supervisor_pid": 10,
        "etcd_endpoint": "127.0.0.1:2379",
        "containerd_endpoint": "unix:/tmp/x/containerd.sock",
    }

    def connects(pid: int, ep: str, times: list[float], ok_at: float) -> list[dict[str, object]]:
        fam, addr, port = (("unix", ep[5:], None) if ep.startswith("unix:")
                           else ("inet", "127.0.0.1", 2379))
        return [dict(ts_ns=ms(t), kind="connect", pid=pid, tid=pid, comm=f"p{pid}",
                     family=fam, addr=addr, port=port, endpoint=ep, ret=-115,
                     ret_ns=ms(t), tcp=fam == "inet",
                     outcome="ok" if t >= ok_at else ("enoent" if fam == "unix" else "refused"),
                     outcome_ns=ms(t) + 10_000) for t in times]

    # etcd's port: a stranger (99) is refused 7 times; the supervisor (10) connects 4 times
    # every 250 ms until etcd (20) listens at 510 ms; containerd's socket: 2 attempts
    sock = (connects(99, "127.0.0.1:2379", [5, 55, 105, 155, 205, 255, 305], 9e9)
            + connects(10, "127.0.0.1:2379", [10, 260, 510, 760], 700)
            + connects(10, "unix:/tmp/x/containerd.sock", [800, 1050], 1000)
            + [dict(ts_ns=ms(600), kind="listen", pid=20, tid=20, comm="etcd", family="inet",
                    addr="127.0.0.1", port=2379, endpoint="127.0.0.1:2379", ret=0),
               dict(ts_ns=ms(900), kind="listen", pid=30, tid=30, comm="containerd",
                    family="unix", addr="/tmp/x/containerd.sock",
                    endpoint="unix:/tmp/x/containerd.sock", ret=0)])
    procs = [dict(ts_ns=ms(1), kind="exec", pid=p, tid=p, ppid=1, comm=c, filename=f"/bin/{c}",
                  argv=[c]) for p, c in ((10, "p10"), (20, "etcd"), (30, "containerd"),
                                         (99, "p99"))]
    a = analyze(trace(meta={"end_ns": ms(1200)}, process=procs, socket=sock), scope="all")
    found = run.demo_waits(a.waits, facts)
    assert found["etcd"]["waiter"] is not None and found["etcd"]["waiter"]["pid"] == 10
    assert found["etcd"]["attempts"] == 4 and found["containerd"]["attempts"] == 2
    text = "\n".join(run.summary_lines(a, facts))
    # the planted times: first attempt 10 ms, listen 600 ms, first ok 760 ms
    assert "127.0.0.1:2379): 4 connects every 250 ms (listener wait); it listened 590 ms after " \
           "the first, the first accepted connect came 160 ms later: polling lag" in text
    assert "containerd.sock): 2 connects every 250 ms" in text and "(end reached)" in text
