"""A bridge and a veth pair made with pyroute2 while the netlink source runs appear in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from tracer import schema
from tracer.context import ContextSource
from tracer.context.netlink import NetlinkSource

pytestmark = pytest.mark.root


@pytest.fixture
def names() -> Iterator[tuple[str, str, str]]:
    tag = uuid.uuid4().hex[:6]
    br, va, vb = f"kpbr{tag}", f"kpva{tag}", f"kpvb{tag}"
    yield br, va, vb
    with IPRoute() as ipr:  # always clean up, whatever the test did
        for n in (va, vb, br):
            for i in ipr.link_lookup(ifname=n):
                ipr.link("del", index=i)


def test_bridge_and_veth_rows_in_order(names: tuple[str, str, str]) -> None:
    br, va, vb = names
    src = NetlinkSource()
    assert isinstance(src, ContextSource)
    src.start()
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=br, kind="bridge")
            br_i = ipr.link_lookup(ifname=br)[0]
            ipr.link("set", index=br_i, state="up")
            ipr.addr("add", index=br_i, address="10.231.7.1", prefixlen=24)
            ipr.link("add", ifname=va, kind="veth", peer=vb)
            va_i = ipr.link_lookup(ifname=va)[0]
            ipr.link("set", index=va_i, master=br_i)
            ipr.link("set", index=va_i, state="up")
            ipr.link("del", index=va_i)  # deletes its peer too
            ipr.addr("del", index=br_i, address="10.231.7.1", prefixlen=24)
            ipr.link("del", index=br_i)
    finally:
        src.stop()
    t = src.drain()
    assert t is not None and t.schema.equals(schema.NETLINK)
    ours = [r for r in t.to_pylist() if r["ifname"] in (br, va, vb)]
    got = [(r["kind"], r["ifname"], r["link_kind"], r["state"], r["address"]) for r in ours
           if r["kind"] != "route_new" and r["kind"] != "route_del"
           and not (r["kind"].startswith("addr") and ":" in (r["address"] or ""))]
    assert got == [
        ("link_new", br, "bridge", "down", None),
        ("link_new", br, "bridge", "up", None),
        ("addr_new", br, "bridge", None, "10.231.7.1/24"),
        ("link_new", vb, "veth", "down", None),  # the kernel creates the peer first
        ("link_new", va, "veth", "down", None),
        ("link_new", va, "veth", "up", None),
        # deleting a veth takes it down, then both ends go
        ("link_new", va, "veth", "down", None),
        ("link_del", va, "veth", "down", None),
        ("link_del", vb, "veth", "down", None),
        ("addr_del", br, "bridge", None, "10.231.7.1/24"),
        ("link_new", br, "bridge", "down", None),
        ("link_del", br, "bridge", "down", None),
    ]
    routes = [(r["kind"], r["address"]) for r in ours if r["kind"].startswith("route")]
    assert ("route_new", "10.231.7.0/24") in routes and ("route_del", "10.231.7.0/24") in routes
    assert all(r["netns"] == "" for r in ours)
    stamps = [r["ts_ns"] for r in ours]
    assert stamps == sorted(stamps)
    assert src.drain() is None
