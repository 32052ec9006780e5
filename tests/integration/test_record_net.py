"""Connects across a real network namespace (veth pair made with pyroute2) and a real Go
client/server pair (Debian's etcd and etcdctl): the outcomes the recorder reports must be
the ones that happened."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.recording import (
    descendants,
    etcdctl_before_etcd,
    free_port,
    record,
    rows_of,
)
from tracer import schema

pytestmark = pytest.mark.bpf


@pytest.fixture
def netns() -> Iterator[tuple[str, str, str]]:
    """A namespace reachable over a veth pair: (ns name, host ip, ns ip)."""
    from pyroute2 import IPRoute, NetNS
    from pyroute2 import netns as nsmod

    name = f"k3sprof-t-{uuid.uuid4().hex[:6]}"
    host_if, ns_if = f"kp{name[-6:]}h", f"kp{name[-6:]}n"
    nsmod.create(name)
    ipr = IPRoute()
    try:
        ipr.link("add", ifname=host_if, kind="veth", peer=ns_if)
        idx_ns = ipr.link_lookup(ifname=ns_if)[0]
        ipr.link("set", index=idx_ns, net_ns_fd=name)
        idx_h = ipr.link_lookup(ifname=host_if)[0]
        ipr.addr("add", index=idx_h, address="10.213.7.1", prefixlen=30)
        ipr.link("set", index=idx_h, state="up")
        with NetNS(name) as ns:
            i = ns.link_lookup(ifname=ns_if)[0]
            ns.addr("add", index=i, address="10.213.7.2", prefixlen=30)
            ns.link("set", index=i, state="up")
            lo = ns.link_lookup(ifname="lo")[0]
            ns.link("set", index=lo, state="up")
        yield name, "10.213.7.1", "10.213.7.2"
    finally:
        with contextlib.suppress(Exception):
            ipr.link("del", ifname=host_if)
        ipr.close()
        nsmod.remove(name)


def test_server_in_another_namespace_over_veth(tmp_path: Path,
                                               netns: tuple[str, str, str]) -> None:
    name, _, ns_ip = netns
    port = free_port()
    # GIVEN a client that connects to the namespace before and after a server listens there
    client = (
        "import socket,time,subprocess,sys\n"
        f"def c():\n s=socket.socket(); s.settimeout(2)\n"
        f" try:\n  s.connect(('{ns_ip}',{port})); return 'ok'\n"
        " except ConnectionRefusedError: return 'refused'\n finally: s.close()\n"
        "print(c(), flush=True)\n"
        f"srv=subprocess.Popen(['ip','netns','exec','{name}','python3','-c',"
        f"'import socket,time;s=socket.socket();s.bind((\"0.0.0.0\",{port}));s.listen();"
        "print(1,flush=True);c,_=s.accept();time.sleep(0.2)'],stdout=subprocess.PIPE)\n"
        "srv.stdout.readline()\n"
        "print(c(), flush=True)\nsrv.wait(5)\n"
    )
    out = tmp_path / "t"
    p = record(out, ["/usr/bin/python3", "-c", client])
    trace = schema.load(out)
    pids = descendants(trace, trace.meta["command_pid"])
    conns = [r for r in rows_of(trace, "socket", pids, kind="connect")
             if r["endpoint"] == f"{ns_ip}:{port}"]
    # THEN the refused and the ok connect cross the veth with their real outcomes, and the
    # server's listen inside the namespace is seen
    assert [r["outcome"] for r in conns] == ["refused", "ok"], p.stdout
    listens = rows_of(trace, "socket", pids, kind="listen")
    assert [r["port"] for r in listens] == [port]
    assert conns[0]["outcome_ns"] < listens[0]["ts_ns"] < conns[1]["ts_ns"]


@pytest.mark.skipif(not (shutil.which("etcd") and shutil.which("etcdctl")),
                    reason="needs Debian etcd-server and etcd-client")
def test_go_client_polls_until_go_server_listens(tmp_path: Path) -> None:
    # GIVEN etcdctl (Go, gRPC with backoff) started BEFORE etcd (Go) listens on its port
    cmd, port = etcdctl_before_etcd(tmp_path)
    out = tmp_path / "t"
    record(out, cmd, timeout=90)
    assert "is healthy" in (tmp_path / "health.txt").read_text()
    trace = schema.load(out)
    pids = descendants(trace, trace.meta["command_pid"])
    procs = {r["pid"]: r["comm"] for r in rows_of(trace, "process", pids, kind="exec")}
    ctl = {p for p, c in procs.items() if c == "etcdctl"}
    srv = {p for p, c in procs.items() if c == "etcd"}
    assert ctl and srv
    conns = [r for r in rows_of(trace, "socket", ctl, kind="connect")
             if r["endpoint"] == f"127.0.0.1:{port}"]
    listen = [r for r in rows_of(trace, "socket", srv, kind="listen") if r["port"] == port]
    # THEN: refused non-blocking connects (Go: EINPROGRESS, answer later), etcd's listen,
    # then an ok connect, in that order
    assert len(listen) == 1
    refused = [r for r in conns if r["outcome"] == "refused"]
    ok = [r for r in conns if r["outcome"] == "ok"]
    assert refused and ok
    assert all(r["ret"] == -115 for r in conns)  # every Go connect is non-blocking
    assert max(r["outcome_ns"] for r in refused) < listen[0]["ts_ns"] < min(
        r["outcome_ns"] for r in ok)
    assert (tmp_path / "etcd").exists()  # etcd really started with its data dir
    subprocess.run(["pkill", "-f", f"--data-dir {tmp_path / 'etcd'}"], check=False)
