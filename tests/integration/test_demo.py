"""The demo: its supervisor (real etcd, containerd, modprobe, iptables, CNI) and the recorded run.

Supervisor-only tests are marked `root`; the recorded end-to-end run is marked `bpf`.
Leftover checks are scoped to THIS test's supervisor (its pid names its namespaces and dir),
because other demos may run on the same machine at the same time.
"""

from __future__ import annotations

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

from tracer.demo import supervisor as sup

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
