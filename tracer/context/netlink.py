"""Network plumbing as it happens: rtnetlink link, address and route changes -> ``netlink`` rows.

A thread listens on an rtnetlink socket bound to the link / IPv4+IPv6 address / route multicast
groups and decodes with pyroute2's netlink marshal and its rtnetlink message classes (link,
address, route: the kinds subscribed to), imported without the rest of pyroute2
(tracer/context/pyroute2_lazy.py: the package's ``__init__`` costs ~10 MB of the recorder's
memory). The links that exist at the start come from a RTM_GETLINK dump on a socket of our
own, decoded the same way. Each message is stamped with
``time.monotonic_ns()`` when the datagram is read: the trace clock, a few microseconds after the
kernel made the change (rtnetlink notifications are sent synchronously by the kernel path that
made it; only our wakeup latency is added).

Rows (kind):
* ``link_new``: a link appeared or changed what we record (name, kind, admin state up/down).
  The kernel sends RTM_NEWLINK for any change; repeats that change none of these are skipped,
  so "cni0 up" is one row, not one per carrier flap or bridge-port update.
* ``link_del``; ``addr_new`` / ``addr_del`` (address "10.42.0.1/24");
  ``route_new`` / ``route_del`` (address = destination "10.42.0.0/24" or "default"). Routes of
  the kernel's ``local`` table (one per address, implied by the address rows) are left out.

``netns`` is "" for the namespace the recorder runs in, else the name of a namespace under
/run/netns that was asked for (``netns=[...]``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import pyarrow as pa

from tracer import schema
from tracer._errors import UsageError
from tracer.context.pyroute2_lazy import package_init_deferred

with package_init_deferred():
    from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
    from pyroute2.netlink.marshal import Marshal
    from pyroute2.netlink.rtnl import (
        RTM_GETLINK,
        RTMGRP_IPV4_IFADDR,
        RTMGRP_IPV4_ROUTE,
        RTMGRP_IPV6_IFADDR,
        RTMGRP_IPV6_ROUTE,
        RTMGRP_LINK,
    )
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

# rtnetlink message types (linux/rtnetlink.h)
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
_KINDS = {
    RTM_NEWLINK: "link_new", RTM_DELLINK: "link_del",
    RTM_NEWADDR: "addr_new", RTM_DELADDR: "addr_del",
    RTM_NEWROUTE: "route_new", RTM_DELROUTE: "route_del",
}  # fmt: skip
_GROUPS = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
           | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
IFF_UP = 0x1
RT_TABLE_LOCAL = 255
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
#: how long the start-time link dump may take before we go on without it
DUMP_TIMEOUT_S = 5.0


class RtnlMarshal(Marshal):  # type: ignore[misc]  # pyroute2 is untyped
    """pyroute2's netlink parser, with the message classes of the kinds we subscribe to (its
    own MarshalRtnl maps every rtnetlink family, and imports their classes: tc, neighbour,
    ...). Other types decode as plain netlink messages (and make no row)."""

    msg_map: ClassVar[dict[int, type]] = {
        RTM_NEWLINK: ifinfmsg, RTM_DELLINK: ifinfmsg,
        RTM_NEWADDR: ifaddrmsg, RTM_DELADDR: ifaddrmsg,
        RTM_NEWROUTE: rtmsg, RTM_DELROUTE: rtmsg,
    }  # fmt: skip


def _open_socket(netns: str, groups: int = _GROUPS) -> socket.socket:
    """An rtnetlink socket bound to `groups` (0: none, for a request), in netns ("" = ours).

    setns() only moves the calling thread, so a named namespace is entered from a short-lived
    thread; the socket stays bound to the namespace it was made in.
    """
    if not netns:
        return _bound_socket(groups)
    path = os.path.join(NETNS_DIR, netns)
    if not os.path.exists(path):
        raise UsageError(f"network namespace {netns!r} not found in {NETNS_DIR}")
    result: dict[str, Any] = {}

    def enter() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            result["sock"] = _bound_socket(groups)
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=enter, name="k3sprof-netns-enter")
    t.start()
    t.join()
    if "error" in result:
        raise UsageError(f"cannot watch network namespace {netns!r}: {result['error']}")
    sock: socket.socket = result["sock"]
    return sock


def _bound_socket(groups: int) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    # a startup burst (CNI setting up many veths) must not overflow the receive queue
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    s.bind((0, groups))
    return s


def _link_kind(msg: Any) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return None
    kind = info.get_attr("IFLA_INFO_KIND")
    return str(kind) if kind else None


class _Namespace:
    """Decoding state of one namespace: what we know of each link, to name and dedupe."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.links: dict[int, tuple[str | None, str | None, str]] = {}

    def rows(self, msg: Any, ts: int) -> list[dict[str, Any]]:
        mtype = msg["header"]["type"]
        kind = _KINDS.get(mtype)
        if kind is None:
            return []
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            if msg.get("family", 0) != socket.AF_UNSPEC:
                return []  # AF_BRIDGE port notifications repeat the link's own
            link_index = int(msg["index"])
            name = msg.get_attr("IFLA_IFNAME")
            prev = self.links.get(link_index)
            link_kind = _link_kind(msg) or (prev[1] if prev else None)
            state = "up" if int(msg["flags"]) & IFF_UP else "down"
            now = (name, link_kind, state)
            if mtype == RTM_NEWLINK:
                if prev == now:
                    return []
                self.links[link_index] = now
            else:
                self.links.pop(link_index, None)
            return [self._row(ts, kind, link_index, name, link_kind, state, None)]
        if mtype in (RTM_NEWADDR, RTM_DELADDR):
            index = int(msg["index"])
            addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            text = f"{addr}/{msg['prefixlen']}" if addr else None
            name = msg.get_attr("IFA_LABEL") or self._name(index)
            return [self._row(ts, kind, index, name, self._kind(index), None, text)]
        table = msg.get_attr("RTA_TABLE") or msg.get("table")
        if table == RT_TABLE_LOCAL:
            return []
        dst = msg.get_attr("RTA_DST")
        text = f"{dst}/{msg['dst_len']}" if dst else "default"
        oif = msg.get_attr("RTA_OIF")
        oif_index = int(oif) if oif is not None else None
        name = self._name(oif_index) if oif_index is not None else None
        kind_of = self._kind(oif_index) if oif_index is not None else None
        return [self._row(ts, kind, oif_index, name, kind_of, None, text)]

    def _name(self, index: int) -> str | None:
        link = self.links.get(index)
        return link[0] if link else None

    def _kind(self, index: int) -> str | None:
        link = self.links.get(index)
        return link[1] if link else None

    def _row(self, ts: int, kind: str, index: int | None, name: str | None,
             link_kind: str | None, state: str | None, address: str | None) -> dict[str, Any]:
        return {"ts_ns": ts, "kind": kind, "ifindex": index, "ifname": name,
                "link_kind": link_kind, "state": state, "address": address,
                "netns": self.name}

    def learn_existing(self, sock_family_dump: list[Any]) -> None:
        for msg in sock_family_dump:
            if msg["header"]["type"] == RTM_NEWLINK and msg.get("family", 0) == socket.AF_UNSPEC:
                self.links[int(msg["index"])] = (
                    msg.get_attr("IFLA_IFNAME"), _link_kind(msg),
                    "up" if int(msg["flags"]) & IFF_UP else "down",
                )


def _dump_links(netns: str) -> list[Any]:
    """The links that exist now (names and kinds for address/route rows of old links): an
    RTM_GETLINK dump request built with pyroute2's ifinfmsg, its replies parsed by
    RtnlMarshal, until NLMSG_DONE. OSError when the kernel answers with an error or the dump
    does not finish in DUMP_TIMEOUT_S."""
    seq = 1
    req = ifinfmsg()
    req["family"] = socket.AF_UNSPEC
    req["header"]["type"] = RTM_GETLINK
    req["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
    req["header"]["sequence_number"] = seq
    req.encode()
    marshal = RtnlMarshal()
    links: list[Any] = []
    with _open_socket(netns, groups=0) as sock:
        sock.settimeout(DUMP_TIMEOUT_S)
        sock.send(req.data)
        while True:
            data = sock.recv(1 << 20)  # socket.timeout is an OSError
            for msg in marshal.parse(data):
                header = msg["header"]
                if header.get("sequence_number") != seq:
                    continue
                if header["type"] == NLMSG_DONE:
                    return links
                if header["type"] == NLMSG_ERROR:
                    raise OSError(f"RTM_GETLINK dump failed: {header.get('error')}")
                if header["type"] == RTM_NEWLINK and not header.get("error"):
                    links.append(msg)  # (one that did not decode is left out)


class NetlinkSource:
    """Link/address/route changes in the recorder's network namespace (and named ones)."""

    table = "netlink"

    def __init__(self, netns: Sequence[str] = ()) -> None:
        self._names = ["", *netns]
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._socks: dict[int, tuple[socket.socket, _Namespace]] = {}
        #: messages the kernel could not queue for us (ENOBUFS): a burst outran the thread
        self.overruns = 0
        #: messages that could not be decoded into a row (counted, skipped)
        self.decode_errors = 0

    def start(self) -> None:
        # subscribe before the dump: a link born in between is seen as an event, not lost
        for name in self._names:
            sock = _open_socket(name)
            ns = _Namespace(name)
            self._socks[sock.fileno()] = (sock, ns)
        for _, ns in self._socks.values():
            with contextlib.suppress(OSError):
                ns.learn_existing(_dump_links(ns.name))
        self._thread = threading.Thread(target=self._run, name="k3sprof-netlink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        marshal = RtnlMarshal()
        fds = [*self._socks, self._stop_r]
        while True:
            ready, _, _ = select.select(fds, [], [])
            stopping = self._stop_r in ready
            # when stopping, a last look at every socket, then end
            for fd in list(self._socks) if stopping else ready:
                self._read_all(fd, marshal)
            if stopping:
                return

    def _read_all(self, fd: int, marshal: RtnlMarshal) -> None:
        sock, ns = self._socks[fd]
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == 105:  # ENOBUFS: the kernel dropped notifications
                    self.overruns += 1
                    continue
                return
            ts = time.monotonic_ns()
            rows: list[dict[str, Any]] = []
            for msg in marshal.parse(data):
                try:
                    rows.extend(ns.rows(msg, ts))
                except (KeyError, TypeError, ValueError):
                    self.decode_errors += 1  # one odd message must not end the thread
            if rows:
                with self._lock:
                    self._rows.extend(rows)

    def drain(self) -> pa.Table | None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return None
        return pa.Table.from_pylist(rows, schema=schema.NETLINK)

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
        for sock, _ in self._socks.values():
            sock.close()
        self._socks.clear()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
