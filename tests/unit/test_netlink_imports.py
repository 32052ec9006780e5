"""The netlink source loads only the pyroute2 parts it decodes with, and the rest of pyroute2
still works in the same process (tracer/context/pyroute2_lazy.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from tracer.context import netlink

_PROBE = """
import json, sys
from tracer.context import netlink
after_source = sorted(sys.modules)
from pyroute2 import IPRoute          # the package's public names, on first use
import pyroute2
import pyroute2.iproute
print(json.dumps({
    "after_source": after_source,
    "iproute_is_real": IPRoute is pyroute2.iproute.IPRoute,
    "ndb": pyroute2.NDB.__module__,
    "version": pyroute2.__version__,
}))
"""


def test_the_netlink_source_does_not_run_pyroute2s_package_init() -> None:
    p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                       timeout=120, check=True)
    got = json.loads(p.stdout)
    mods = set(got["after_source"])
    assert "pyroute2.netlink.marshal" in mods and "pyroute2.netlink.rtnl.ifinfmsg" in mods
    # what the package __init__ would have imported: every netlink family, NDB's sqlite3,
    # the asyncio sockets (and ssl with them)
    heavy = {"pyroute2.ndb", "pyroute2.iproute", "pyroute2.netlink.nlsocket",
             "pyroute2.netlink.rtnl.tcmsg", "pyroute2.nftables", "sqlite3", "asyncio", "ssl"}
    assert not heavy & mods, sorted(heavy & mods)
    pyroute2_mods = [m for m in mods if m.startswith("pyroute2")]
    assert len(pyroute2_mods) < 60, pyroute2_mods  # 0.9.7: 27; through the package: ~230
    # and nothing is lost for code that wants the rest of pyroute2 later
    assert got["iproute_is_real"] is True
    assert got["ndb"] == "pyroute2.ndb.main"
    assert got["version"] and got["version"] != "unknown"


def test_link_dump_matches_the_c_library() -> None:
    """The start-time RTM_GETLINK dump (pyroute2's ifinfmsg + our socket) sees every link
    if_nameindex(3) sees (no root needed to dump links)."""
    links = netlink._dump_links("")
    got = sorted((int(m["index"]), m.get_attr("IFLA_IFNAME")) for m in links)
    assert got == sorted(socket.if_nameindex())
    lo = [m for m in links if m.get_attr("IFLA_IFNAME") == "lo"]
    assert lo and int(lo[0]["flags"]) & netlink.IFF_UP
