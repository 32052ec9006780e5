"""Real daemons from Debian (etcd 3.4, containerd 1.6) as private instances: own data dirs, free
ports, private sockets; nothing shared with the host's. For tests and bench/log_skew.py."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.integration.recording import free_port


@dataclass(frozen=True)
class Daemon:
    command: list[str]
    #: the line that says the daemon is ready (a regex for `log:`)
    ready: str
    #: (regex searched in a log row's raw line announcing a listener, that listener's endpoint
    #: as socket rows write it); the ready line comes after all of them
    announces: tuple[tuple[str, str], ...]


def etcd(workdir: Path) -> Daemon | None:
    """etcd 3.4 with its default capnslog (microsecond stamps). Its "advertise client URLs"
    line is printed right after the client listener is created (embed.StartEtcd listens, then
    prints its configuration); "ready to serve client requests" follows raft's election."""
    binary = shutil.which("etcd")
    if binary is None:
        return None
    client, peer = free_port(), free_port()
    cmd = [
        binary, "--name", "k3sprof-test", "--data-dir", str(workdir / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"k3sprof-test=http://127.0.0.1:{peer}",
    ]
    ep = f"127.0.0.1:{client}"
    return Daemon(cmd, "ready to serve client requests",
                  ((rf"advertise client URLs = http://{ep}$", ep),))


def containerd_config(d: Path) -> Path:
    """A private containerd's config: its own root, state and sockets (c.sock gRPC, t.sock
    ttrpc) under `d`; nothing shared with the host's containerd."""
    config = d / "containerd.toml"
    config.write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/t.sock"
[debug]
  address = ""
[metrics]
  address = ""
""")
    return config


def containerd(workdir: Path) -> Daemon | None:
    """containerd 1.6 (logrus, nanosecond stamps) with its own root, state and sockets. It
    listens on the ttrpc and the gRPC socket, logs "serving..." (address=SOCKET) for each from
    the goroutine that serves it, then "containerd successfully booted in ...s"."""
    binary = shutil.which("containerd")
    if binary is None:
        return None
    d = workdir
    config = containerd_config(d)
    grpc, ttrpc = f"unix:{d}/c.sock", f"unix:{d}/t.sock"
    return Daemon([binary, "--config", str(config)], "containerd successfully booted",
                  ((rf'msg=serving\.\.\. address={d}/c\.sock', grpc),
                   (rf'msg=serving\.\.\. address={d}/t\.sock', ttrpc)))
