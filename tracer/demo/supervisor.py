"""The demo workload: a small supervisor that brings up a node the way `k3s server` does.

Run as ``python -m tracer.demo.supervisor`` (root), it does real startup work with real programs,
in the order k3s v1.32.4+ does (docs/k3s-startup.md §2.1, §4, §6):

1. datastore: exec ``etcd`` (Go) on free loopback ports with a private data dir, then poll
   ``GET /health`` with a FRESH connection every ``--poll-interval`` (k3s polls its datastore and
   ``/readyz`` the same way, every 2-5 s), then one ``etcdctl endpoint health`` (Go gRPC client);
2. kernel modules: exec ``modprobe -- overlay|br_netfilter|nf_conntrack`` (k3s syssetup; on a
   kernel without loadable modules they fail, harmlessly, as they would for k3s);
3. container runtime: exec ``containerd`` with private root/state dirs and socket, poll connect()
   to its unix socket (ENOENT until it listens; k3s's CRI wait polls every 1 s), then
   ``ctr version`` (k3s: the CRI Version RPC);
4. network: ``iptables`` calls inside a private "node" network namespace (kubelet/kube-proxy/flannel
   chains), and a CNI bridge network for a "pod" namespace, by exec'ing the Debian CNI plugins
   (bridge + host-local IPAM, loopback) with CNI_COMMAND=ADD and the JSON conf on stdin, as
   containerd's CRI plugin does; the plugins run in the node namespace, so the host's network is
   never touched; then DEL;
5. prints ``demo node is ready`` with its CLOCK_MONOTONIC time (the same clock as the trace),
   signals READY=1 on ``--notify-socket`` (a connect + send, like sd_notify), and exits.

Everything is torn down on normal exit, on errors and on SIGTERM/SIGINT/SIGHUP: daemons killed,
namespaces deleted, temp dirs removed. Children run in their own process groups (a terminal's
Ctrl-C reaches only the supervisor, which stops them in order) and with PR_SET_PDEATHSIG=SIGKILL,
so a SIGKILLed supervisor leaves no daemons; its namespaces and dirs are swept by the next start
(``--cleanup`` does only that). Names carry the owner pid: ``k3sprof-demo-<pid>-node``.

This module is a program (the recorded workload), so it prints its own progress and exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer.host import send_notify

PREFIX = "k3sprof-demo"
READY_TEXT = "demo node is ready"
NETNS_DIR = Path("/run/netns")
CNI_BIN_DIR = Path("/usr/lib/cni")
MODULES = ("overlay", "br_netfilter", "nf_conntrack")  # k3s syssetup order: overlay first
#: sun_path is 108 bytes with the NUL; containerd also binds "<socket>.ttrpc"
UNIX_PATH_MAX = 107
#: what run_demo and the tests look for in the supervisor's output
LINE_PREFIX = PREFIX + " ["

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_MNT_DETACH = 2
_OWNER_MARK = b"tracer.demo.supervisor"
_STALE_NAME = re.compile(rf"{PREFIX}-(\d+)-\w+$")

#: the programs each step execs, and the Debian package that has them
REQUIRED_PROGRAMS = {
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "containerd": "containerd",
    "ctr": "containerd",
    "modprobe": "kmod",
    "iptables": "iptables",
}
REQUIRED_CNI_PLUGINS = ("bridge", "host-local", "loopback")


class DemoFailure(Exception):
    """A step failed; the message is one line that says what and why."""


class Interrupted(BaseException):
    """A stop signal arrived; BaseException so no step's `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def missing_programs() -> list[str]:
    """Human-readable list of what this machine lacks to run the demo (empty when ready)."""
    missing = [
        f"{prog} (Debian package {pkg})"
        for prog, pkg in REQUIRED_PROGRAMS.items()
        if shutil.which(prog) is None
    ]
    missing += [
        f"{CNI_BIN_DIR / p} (Debian package containernetworking-plugins)"
        for p in REQUIRED_CNI_PLUGINS
        if not (CNI_BIN_DIR / p).exists()
    ]
    return missing


# --- children: own process group, die with the supervisor -------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(parent_pid: int, netns_fd: int | None) -> Callable[[], None]:
    """preexec_fn: die with the supervisor (PDEATHSIG survives exec), optionally enter a netns."""

    def setup() -> None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)
        if netns_fd is not None and _libc.setns(netns_fd, _CLONE_NEWNET) != 0:
            os._exit(126)

    return setup


@dataclass
class Step:
    """Timing of one step, for the summary and for tests."""

    name: str
    start_s: float
    end_s: float = 0.0
    detail: str = ""


@dataclass
class Options:
    workdir: Path
    poll_interval_s: float = 0.25
    #: per-request timeout of the etcd /health poll; None: 0.8 x the interval. `whatif` changes
    #: only the interval, so a check of its predictions holds this fixed (bench/whatif_demo.py):
    #: tied to the interval, a shorter interval also turns slower answers into failed polls
    request_timeout_s: float | None = None
    #: etcd's --election-timeout, ms (heartbeat a tenth of it, etcd's own ratio); None: etcd's
    #: defaults (1000 ms / 100 ms). A fresh single-member etcd still waits for a randomized
    #: election before it serves: fast-forwarded to one tick short of the election timeout, it
    #: campaigns after 1 to electionTicks ticks, i.e. 0.1-1.0 s by default, drawn anew each
    #: run. That draw is most of the demo's run-to-run spread; a check of what-if predictions
    #: against reruns holds it small (bench/whatif_demo.py), everything else left as it is.
    etcd_election_ms: int | None = None
    #: a step that never gets ready is given up after this; 120 s, not 30: under TCG (the
    #: kernel matrix) with sched and stacks on, etcd took over 30 s to answer /health once
    timeout_s: float = 120.0
    daemon_output: str = "inherit"  # "inherit": to our stderr (the recorder logs it) | "file"
    notify_socket: str | None = None
    hold_s: float = 0.0  # stay "ready" this long before exiting (tests kill it meanwhile)


@dataclass
class Supervisor:
    opts: Options
    t0: float = field(default_factory=time.monotonic)
    state_dir: Path | None = None
    daemons: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    netns_names: list[str] = field(default_factory=list)
    netns_dir_created: bool = False
    cni_added: list[tuple[str, str]] = field(default_factory=list)  # (plugin, conf json)
    steps: list[Step] = field(default_factory=list)
    log_files: dict[str, Path] = field(default_factory=dict)

    # --- output ---------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"{LINE_PREFIX}{time.monotonic() - self.t0:7.3f}s] {text}", flush=True)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        st = Step(name, time.monotonic() - self.t0)
        self.steps.append(st)
        self.say(f"{name} ...")
        yield st
        st.end_s = time.monotonic() - self.t0
        self.say(
            f"{name}: done in {st.end_s - st.start_s:.3f}s{': ' + st.detail if st.detail else ''}"
        )

    # --- process helpers ------------------------------------------------------------------------

    def _popen(
        self,
        argv: Sequence[str],
        *,
        netns: str | None = None,
        stdin: Any = subprocess.DEVNULL,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY) if netns else None
        try:
            return subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=env,
                cwd=self.state_dir,
                process_group=0,
                pass_fds=(fd,) if fd is not None else (),
                preexec_fn=_child_setup(os.getpid(), fd),
            )
        finally:
            if fd is not None:
                os.close(fd)

    def run(
        self,
        argv: Sequence[str],
        *,
        netns: str | None = None,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a short-lived helper to completion (killed with its group on timeout/stop)."""
        p = self._popen(
            argv,
            netns=netns,
            env=env,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        )
        try:
            out, err = p.communicate(input, timeout=timeout or self.opts.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            raise DemoFailure(
                f"{argv[0]} did not finish within {timeout or self.opts.timeout_s:.0f}s"
            ) from None
        except BaseException:
            _kill_group(p)
            raise
        return subprocess.CompletedProcess(list(argv), p.returncode, out, err)

    def start_daemon(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        out: Any = None
        if self.opts.daemon_output == "file":
            assert self.state_dir is not None
            path = self.state_dir / f"{name}.log"
            self.log_files[name] = path
            out = path.open("wb")
        try:
            p = self._popen(argv, stdout=out, stderr=out)
        finally:
            if out is not None:
                out.close()
        self.daemons.append((name, p))
        return p

    def check_alive(self, name: str, p: subprocess.Popen[bytes]) -> None:
        rc = p.poll()
        if rc is not None:
            where = (
                f"its log: {_tail(self.log_files[name])}"
                if name in self.log_files
                else "its output is above"
            )
            raise DemoFailure(f"{name} exited with status {rc} during startup ({where})")

    def poll_until(
        self,
        what: str,
        attempt: Callable[[], tuple[bool, str]],
        daemon: tuple[str, subprocess.Popen[bytes]],
    ) -> tuple[int, str]:
        """Call attempt() at a fixed cadence until it succeeds; (attempts, last result)."""
        interval = self.opts.poll_interval_s
        start = time.monotonic()
        deadline = start + self.opts.timeout_s
        attempts = 0
        while True:
            attempts += 1
            ok, result = attempt()
            if ok:
                return attempts, result
            self.check_alive(*daemon)
            now = time.monotonic()
            if now >= deadline:
                raise DemoFailure(
                    f"{what} not ready after {self.opts.timeout_s:.0f}s "
                    f"({attempts} attempts, last: {result})"
                )
            # fixed cadence from the first attempt (a ticker, like wait.PollUntilContextTimeout)
            next_tick = start + attempts * interval
            while next_tick <= now:
                next_tick += interval
            time.sleep(next_tick - now)

    # --- the steps ------------------------------------------------------------------------------

    def prepare(self) -> None:
        self.opts.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir = Path(
            tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}-", dir=self.opts.workdir)
        )
        os.chmod(self.state_dir, 0o700)
        sock = self.state_dir / "containerd" / "containerd.sock"
        if len(str(sock).encode()) + len(".ttrpc") > UNIX_PATH_MAX:
            raise DemoFailure(
                f"--workdir {self.opts.workdir} is too long for a unix socket path "
                f"({sock}); use a shorter one, e.g. /tmp"
            )

    def etcd_election_args(self) -> list[str]:
        ms = self.opts.etcd_election_ms
        if ms is None:
            return []
        return ["--election-timeout", str(ms), "--heartbeat-interval", str(max(1, ms // 10))]

    def start_etcd(self) -> None:
        assert self.state_dir is not None
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        with self.step("datastore: start etcd and poll its /health") as st:
            p = self.start_daemon(
                "etcd",
                [
                    "etcd",
                    "--name",
                    "demo",
                    "--data-dir",
                    str(self.state_dir / "etcd"),
                    "--listen-client-urls",
                    client_url,
                    "--advertise-client-urls",
                    client_url,
                    "--listen-peer-urls",
                    peer_url,
                    "--initial-advertise-peer-urls",
                    peer_url,
                    "--initial-cluster",
                    f"demo={peer_url}",
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    f"{PREFIX}-{os.getpid()}",
                    "--logger",
                    "zap",
                    "--log-outputs",
                    "stderr",
                    *self.etcd_election_args(),
                ],
            )
            self.say(f"etcd pid {p.pid}: client {client_url}, peer {peer_url}")

            # Per-request timeout below the interval, like a kubelet probe's timeoutSeconds:
            # etcd accepts connections before it serves them, so a request sent early would
            # otherwise just hang until etcd is ready, hiding the poll cadence and its lag.
            request_timeout = self.opts.request_timeout_s or 0.8 * self.opts.poll_interval_s

            def health() -> tuple[bool, str]:
                return http_health("127.0.0.1", client, "/health", timeout=request_timeout)

            attempts, result = self.poll_until("etcd /health", health, ("etcd", p))
            st.detail = (
                f"healthy after {attempts} polls of GET {client_url}/health "
                f"every {self.opts.poll_interval_s * 1000:.0f} ms ({result})"
            )
        with self.step("datastore: etcdctl endpoint health (Go gRPC client)") as st:
            r = self.run(
                [
                    "etcdctl",
                    "--endpoints",
                    client_url,
                    "--dial-timeout",
                    "5s",
                    "endpoint",
                    "health",
                ],
                env={**os.environ, "ETCDCTL_API": "3"},
            )
            text = (r.stdout + r.stderr).decode(errors="replace").strip()
            if r.returncode != 0:
                raise DemoFailure(f"etcdctl endpoint health failed (status {r.returncode}): {text}")
            st.detail = text.splitlines()[-1] if text else "ok"

    def load_modules(self) -> None:
        with self.step("kernel modules: modprobe " + ", ".join(MODULES)) as st:
            results = []
            last_reason = ""
            for mod in MODULES:
                r = self.run(["modprobe", "--", mod])
                builtin = Path("/sys/module", mod).exists()
                if r.returncode == 0:
                    results.append(f"{mod} loaded")
                else:
                    # k3s logs "Failed to load kernel module" and goes on: so do we
                    why = r.stderr.decode(errors="replace").strip().splitlines()
                    reason = why[-1].replace("modprobe: ", "") if why else ""
                    results.append(
                        f"{mod} failed (status {r.returncode}"
                        f"{', built into the kernel' if builtin else ''})"
                    )
                    last_reason = reason or last_reason
            if last_reason:
                results.append(f"modprobe said: {last_reason}")
            st.detail = "; ".join(results)

    def start_containerd(self) -> None:
        assert self.state_dir is not None
        base = self.state_dir / "containerd"
        base.mkdir()
        sock = base / "containerd.sock"
        config = base / "config.toml"
        # Plugins that need what a test box lacks (CRI wants a full node; btrfs/zfs/aufs/devmapper
        # want their filesystems) are disabled: the startup shape (exec, socket wait) is the same.
        config.write_text(
            "version = 2\n"
            f'root = "{base / "root"}"\n'
            f'state = "{base / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",'
            ' "io.containerd.snapshotter.v1.devmapper"]\n'
            f'[grpc]\n  address = "{sock}"\n'
            f'[ttrpc]\n  address = "{sock}.ttrpc"\n'
            '[debug]\n  address = ""\n'
            '[metrics]\n  address = ""\n'
        )
        with self.step("container runtime: start containerd and wait for its socket") as st:
            p = self.start_daemon("containerd", ["containerd", "--config", str(config)])
            self.say(f"containerd pid {p.pid}: socket {sock}")

            def connect() -> tuple[bool, str]:
                return unix_connect(str(sock))

            attempts, _ = self.poll_until("containerd socket", connect, ("containerd", p))
            st.detail = (
                f"socket accepted a connection after {attempts} connect() attempts "
                f"every {self.opts.poll_interval_s * 1000:.0f} ms"
            )
        with self.step("container runtime: ctr version") as st:
            r = self.run(["ctr", "--address", str(sock), "version"])
            if r.returncode != 0:
                raise DemoFailure(
                    f"ctr version failed (status {r.returncode}): "
                    f"{r.stderr.decode(errors='replace').strip()}"
                )
            server = r.stdout.decode(errors="replace").split("Server:")[-1].split()
            st.detail = "server " + " ".join(server[:2]) if server else "ok"

    def create_netns(self, role: str) -> str:
        from pyroute2 import netns  # imported late: only the network steps need it

        name = f"{PREFIX}-{os.getpid()}-{role}"
        if not NETNS_DIR.exists():
            self.netns_dir_created = True
            assert self.state_dir is not None
            # remembered on disk too, so a sweep after SIGKILL can undo it
            (self.state_dir / "netns-dir-created").touch()
        netns.create(name, libc=_libc)  # our libc: else pyroute2 execs ldconfig to find one
        self.netns_names.append(name)
        return name

    def setup_iptables(self) -> str:
        with self.step("network: iptables in a private node namespace") as st:
            node = self.create_netns("node")
            # the shape of kubelet's and kube-proxy's first calls: create chains, jump to them
            calls = [
                ["iptables", "-w", "5", "-t", "filter", "-N", "KUBE-FIREWALL"],
                ["iptables", "-w", "5", "-t", "filter", "-A", "INPUT", "-j", "KUBE-FIREWALL"],
                ["iptables", "-w", "5", "-t", "nat", "-N", "KUBE-POSTROUTING"],
                ["iptables", "-w", "5", "-t", "nat", "-A", "POSTROUTING", "-j", "KUBE-POSTROUTING"],
                ["iptables", "-w", "5", "-t", "nat", "-C", "POSTROUTING", "-j", "KUBE-POSTROUTING"],
            ]
            for argv in calls:
                r = self.run(argv, netns=node)
                if r.returncode != 0:
                    raise DemoFailure(
                        f"{' '.join(argv)} failed in netns {node} (status {r.returncode}): "
                        f"{r.stderr.decode(errors='replace').strip()}"
                    )
            st.detail = f"{len(calls)} iptables calls in netns {node}"
        return node

    def setup_cni(self, node: str) -> None:
        assert self.state_dir is not None
        with self.step("network: CNI bridge network for a pod namespace (ADD)") as st:
            pod = self.create_netns("pod")
            bridge_conf = json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": PREFIX,
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.42.0.0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        # keep IPAM state private (the default is /var/lib/cni on the host)
                        "dataDir": str(self.state_dir / "cni-ipam"),
                    },
                }
            )
            lo_conf = json.dumps({"cniVersion": "0.4.0", "name": "lo", "type": "loopback"})
            result = {}
            for plugin, conf, ifname in (
                ("loopback", lo_conf, "lo"),
                ("bridge", bridge_conf, "eth0"),
            ):
                r = self.cni(plugin, "ADD", conf, node, pod, ifname)
                self.cni_added.append((plugin, conf))
                result[plugin] = json.loads(r.stdout or b"{}")
            ips = [ip.get("address", "?") for ip in result["bridge"].get("ips", [])]
            # the plugin's result lists what it made: the bridge, the host-side veth, pod eth0
            made = sorted(
                i.get("name", "?")
                for i in result["bridge"].get("interfaces", [])
                if not i.get("sandbox")
            )
            st.detail = (
                f"pod {pod} eth0 {', '.join(ips)} on bridge cni0; node links: {', '.join(made)}"
            )
        with self.step("network: CNI DEL (as when the pod sandbox goes away)") as st:
            self.cni_teardown(node, pod)
            st.detail = "loopback and bridge released"

    def cni(
        self, plugin: str, command: str, conf: str, node: str, pod: str, ifname: str
    ) -> subprocess.CompletedProcess[bytes]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": f"{PREFIX}-{os.getpid()}",
            "CNI_NETNS": str(NETNS_DIR / pod),
            "CNI_IFNAME": ifname,
            "CNI_PATH": str(CNI_BIN_DIR),
        }
        r = self.run([str(CNI_BIN_DIR / plugin)], netns=node, input=conf.encode(), env=env)
        if r.returncode != 0:
            msg = (r.stdout + r.stderr).decode(errors="replace").strip()
            raise DemoFailure(f"CNI {plugin} {command} failed (status {r.returncode}): {msg}")
        return r

    def cni_teardown(self, node: str, pod: str) -> None:
        while self.cni_added:
            plugin, conf = self.cni_added.pop()
            self.cni(plugin, "DEL", conf, node, pod, "eth0" if plugin == "bridge" else "lo")

    def declare_ready(self) -> None:
        self.say(f"{READY_TEXT} (monotonic_ns={time.monotonic_ns()})")
        if self.opts.notify_socket:
            notify_ready(self.opts.notify_socket)

    # --- teardown -------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Undo everything; never raises; returns the problems it could not fix."""
        problems: list[str] = []
        if self.cni_added and len(self.netns_names) >= 2:
            try:
                self.cni_teardown(self.netns_names[0], self.netns_names[1])
            except (DemoFailure, OSError) as e:
                problems.append(str(e))  # deleting the namespaces below removes it all anyway
        for name, p in reversed(self.daemons):
            stop_daemon(name, p, problems)
        self.daemons.clear()
        for name in reversed(self.netns_names):
            remove_netns(name, problems)
        self.netns_names.clear()
        if self.netns_dir_created:
            restore_netns_dir(problems)
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if self.state_dir.exists():
                problems.append(f"could not remove {self.state_dir}")
        return problems


# --- small real-network helpers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_health(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    """One GET on a fresh connection (k3s sets req.Close: a new TCP connect per poll)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read(200).decode(errors="replace").strip()
        return resp.status == 200, f"HTTP {resp.status} {body}"
    except OSError as e:
        return False, _oserror_text(e)
    finally:
        conn.close()


def unix_connect(path: str) -> tuple[bool, str]:
    """One connect() on a fresh unix socket: ENOENT before the file exists, then ok."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError as e:
            return False, _oserror_text(e)
    return True, "connected"


def notify_ready(path: str) -> None:
    """READY=1 on the notify socket (tracer.host.send_notify); a failure is only a warning."""
    try:
        send_notify(path, b"READY=1")
    except OSError as e:
        print(f"{PREFIX}: warning: cannot notify {path}: {_oserror_text(e)}", file=sys.stderr)


def _oserror_text(e: OSError) -> str:
    if isinstance(e, socket.timeout):
        return "timed out"
    return os.strerror(e.errno).lower() if e.errno else str(e)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"{path} unreadable"
    return " | ".join(text[-lines:]) or "empty"


def _kill_group(p: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(timeout=5)


def stop_daemon(name: str, p: subprocess.Popen[bytes], problems: list[str]) -> None:
    """SIGTERM the daemon's process group, SIGKILL after 5 s."""
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(p)
    # whatever it left in its group (none expected: no containers are started)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    if p.poll() is None:
        problems.append(f"{name} (pid {p.pid}) did not exit")


def remove_netns(name: str, problems: list[str]) -> None:
    path = NETNS_DIR / name
    if not path.exists():
        return
    if _libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL:  # EINVAL: not a mount point (a half-created entry)
            problems.append(f"umount {path}: {os.strerror(err)}")
    try:
        path.unlink()
    except OSError as e:
        problems.append(f"remove {path}: {e.strerror}")


def restore_netns_dir(problems: list[str]) -> None:
    """Undo what creating the first named netns did to the host: /run/netns, a shared mount."""
    try:
        if any(NETNS_DIR.iterdir()):
            return  # someone else's namespaces live there now: leave it
    except FileNotFoundError:
        return
    if (
        _libc.umount2(str(NETNS_DIR).encode(), _MNT_DETACH) != 0
        and ctypes.get_errno() != errno.EINVAL
    ):
        problems.append(f"umount {NETNS_DIR}: {os.strerror(ctypes.get_errno())}")
    with contextlib.suppress(OSError):
        NETNS_DIR.rmdir()


# --- stale state of supervisors that died without tearing down (SIGKILL) -------------------------


def _is_live_supervisor(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        return _OWNER_MARK in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def sweep_stale(workdir: Path) -> list[str]:
    """Remove what dead supervisors left: daemons, namespaces, state dirs. Returns what it did."""
    done: list[str] = []
    problems: list[str] = []
    # daemons first (PDEATHSIG normally got them already): any process whose argv names a dead
    # supervisor's state dir, e.g. etcd --data-dir /tmp/k3sprof-demo-123-xyz/etcd
    pattern = re.compile(rb"/" + PREFIX.encode() + rb"-(\d+)-")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        m = pattern.search(cmdline)
        if m and _OWNER_MARK not in cmdline and not _is_live_supervisor(int(m[1])):
            exe = cmdline.split(b"\0")[0].decode(errors="replace")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                done.append(f"killed leftover {exe} (pid {proc.name})")
    if NETNS_DIR.is_dir():
        for entry in sorted(NETNS_DIR.iterdir()):
            ns_m = _STALE_NAME.match(entry.name)
            if ns_m and not _is_live_supervisor(int(ns_m[1])):
                remove_netns(entry.name, problems)
                done.append(f"removed leftover netns {entry.name}")
    restore_dir = False
    if workdir.is_dir():
        for entry in sorted(workdir.iterdir()):
            dir_m = re.match(rf"{PREFIX}-(\d+)-", entry.name)
            if dir_m and entry.is_dir() and not _is_live_supervisor(int(dir_m[1])):
                restore_dir |= (entry / "netns-dir-created").exists()
                shutil.rmtree(entry, ignore_errors=True)
                done.append(f"removed leftover dir {entry}")
    if restore_dir:
        restore_netns_dir(problems)
    done += [f"could not clean: {p}" for p in problems]
    return done


# --- entry point ---------------------------------------------------------------------------------


_OWNER_PID = os.getpid()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    if os.getpid() != _OWNER_PID:
        # a forked helper (pyroute2 forks for netns work) inherited this handler: it must die
        # as a plain process would, never unwind into the supervisor's teardown
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # the first stop signal wins: later ones (the recorder's SIGTERM after a Ctrl-C) must not
    # interrupt the teardown this one starts
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Options]:
    ap = argparse.ArgumentParser(
        prog="python -m tracer.demo.supervisor", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent of the private state dir (default: %(default)s)",
    )
    ap.add_argument("--poll-interval", type=float, default=0.25, help="readiness poll interval, s")
    ap.add_argument("--request-timeout", type=float, default=None,
                    help="per-request timeout of the /health poll, s (default: 0.8 x interval)")
    ap.add_argument("--etcd-election-timeout", type=int, default=None, metavar="MS",
                    help="etcd's --election-timeout, ms (heartbeat a tenth); default: etcd's")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="give up on a step after this, s")
    ap.add_argument(
        "--daemon-output",
        choices=("inherit", "file"),
        default="inherit",
        help="etcd/containerd output: to our stderr, or to files in the state dir",
    )
    ap.add_argument("--notify-socket", help="unix datagram socket to send READY=1 to when ready")
    ap.add_argument("--hold", type=float, default=0.0, help="stay up this long after ready, s")
    ap.add_argument("--cleanup", action="store_true", help="only remove leftovers of dead runs")
    a = ap.parse_args(argv)
    if a.poll_interval <= 0 or a.timeout <= 0:
        ap.error("--poll-interval and --timeout must be positive")
    if a.request_timeout is not None and a.request_timeout <= 0:
        ap.error("--request-timeout must be positive")
    if a.etcd_election_timeout is not None and a.etcd_election_timeout < 10:
        ap.error("--etcd-election-timeout must be at least 10 ms")
    return a, Options(
        workdir=a.workdir,
        poll_interval_s=a.poll_interval,
        request_timeout_s=a.request_timeout,
        etcd_election_ms=a.etcd_election_timeout,
        timeout_s=a.timeout,
        daemon_output=a.daemon_output,
        notify_socket=a.notify_socket,
        hold_s=a.hold,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args, opts = parse_args(argv)
    if os.geteuid() != 0:
        print(f"{PREFIX}: error: needs root (namespaces, iptables): run with sudo", file=sys.stderr)
        return 4
    for line in sweep_stale(opts.workdir):
        print(f"{PREFIX}: {line}", flush=True)
    if args.cleanup:
        return 0
    missing = missing_programs()
    if missing:
        print(
            f"{PREFIX}: error: missing {', '.join(missing)} (run: sudo make setup)", file=sys.stderr
        )
        return 1
    global _OWNER_PID
    _OWNER_PID = os.getpid()
    sup = Supervisor(opts)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_interrupted)
    rc = 0
    try:
        sup.say(
            f"supervisor pid {os.getpid()} starting "
            f"(poll interval {opts.poll_interval_s * 1000:.0f} ms)"
        )
        sup.prepare()
        sup.start_etcd()
        sup.load_modules()
        sup.start_containerd()
        node = sup.setup_iptables()
        sup.setup_cni(node)
        sup.declare_ready()
        if opts.hold_s:
            time.sleep(opts.hold_s)
    except Interrupted as e:
        print(f"{PREFIX}: stopped by {e}, tearing down", file=sys.stderr, flush=True)
        rc = 128 + e.signum
    except DemoFailure as e:
        print(f"{PREFIX}: error: {e}", file=sys.stderr, flush=True)
        rc = 1
    finally:
        if os.getpid() != _OWNER_PID:  # a forked helper unwinding: not ours to tear down
            os._exit(1)
        # a second signal must not cut the teardown short
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        t = time.monotonic()
        problems = sup.teardown()
        for p in problems:
            print(f"{PREFIX}: teardown: {p}", file=sys.stderr, flush=True)
        sup.say(
            f"teardown done in {time.monotonic() - t:.3f}s"
            f"{'' if not problems else f' ({len(problems)} problems)'}"
        )
    return rc if not problems else (rc or 1)


if __name__ == "__main__":
    sys.exit(main())
