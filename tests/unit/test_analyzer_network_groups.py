"""Network milestones (netlink table), unit / pod grouping (cgroup table): synthetic tables."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import analyze_json, ms, table, trace
from tests.unit.test_analyzer import connect, exec_, exit_, fork, listen
from tracer import conditions
from tracer._errors import UsageError
from tracer.analyzer import Analysis, analyze
from tracer.report.html import HtmlReport
from tracer.report.text import render

POD = "8f9c4a5e-1b2d-4c3e-9f0a-7b6c5d4e3f21"


def link(t: float, kind: str, ifindex: int, ifname: str, state: str | None = None,
         address: str | None = None, link_kind: str | None = None) -> dict[str, Any]:
    return dict(ts_ns=ms(t), kind=kind, ifindex=ifindex, ifname=ifname, state=state,
                address=address, link_kind=link_kind, netns="")


def netlink_rows() -> list[dict[str, Any]]:
    return [
        # eth0 existed before the trace: its first row is a change (it goes up), not a creation
        link(150, "link_new", 2, "eth0", "up"),
        link(160, "addr_new", 2, "eth0", address="192.168.1.5/24"),
        # cni0 born down, gets an address, goes up; a second address is not a new milestone
        link(200, "link_new", 7, "cni0", "down", link_kind="bridge"),
        link(250, "addr_new", 7, "cni0", address="10.42.0.1/24"),
        link(300, "link_new", 7, "cni0", "up", link_kind="bridge"),
        link(310, "addr_new", 7, "cni0", address="10.42.0.2/24"),
        # flannel.1: up, never an address
        link(220, "link_new", 8, "flannel.1", "down", link_kind="vxlan"),
        link(260, "link_new", 8, "flannel.1", "up", link_kind="vxlan"),
        link(400, "route_new", 8, "flannel.1", address="10.42.1.0/24"),
    ]


def net_trace(profile_exe: str = "server") -> Any:
    return trace(
        meta={"start_ns": ms(100), "end_ns": ms(1000), "command_pid": 10},
        process=[fork(110, 10, 1), exec_(111, 10, profile_exe), exit_(900, 10, comm=profile_exe)],
        netlink=netlink_rows(),
    )


def test_conditions_parse_and_match_netlink_rows() -> None:
    tables = {"netlink": table("netlink", netlink_rows())}
    assert conditions.when(conditions.parse("link-up:cni0"), tables) == ms(300)
    assert conditions.when(conditions.parse("addr:cni0"), tables) == ms(250)
    assert conditions.when(conditions.parse("link-up:flannel.1"), tables) == ms(260)
    assert conditions.when(conditions.parse("addr:flannel.1"), tables) is None  # a route only
    assert conditions.when(conditions.parse("link-up:nosuch"), tables) is None
    assert conditions.parse("addr:cni0").tables == ("netlink",)
    assert "link-up:IFNAME" in conditions.SYNTAX and "addr:IFNAME" in conditions.SYNTAX


@pytest.mark.parametrize("bad", ["link-up:", "addr:a/b", "addr:x y", "link-up:" + "x" * 16])
def test_bad_interface_conditions_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        conditions.parse(bad)


def test_generic_profile_milestones_for_interfaces_created_during_the_trace() -> None:
    r = analyze_json(net_trace(), profile="generic")
    net = {m["name"]: m for m in r["milestones"] if m["spec"].startswith(("link-up:", "addr:"))}
    assert {n: m["ts_ns"] for n, m in net.items()} == {
        "cni0 has an address": ms(250),
        "flannel.1 up": ms(260),
        "cni0 up": ms(300),
    }
    assert net["cni0 up"]["spec"] == "link-up:cni0"
    assert not any("eth0" in m["name"] for m in r["milestones"])  # existed before the trace
    text = render(Analysis.from_json(r))
    assert "cni0 has an address" in text and "flannel.1 up" in text


def test_netlink_rows_from_before_the_trace_start_are_not_creations() -> None:
    tr = trace(meta={"start_ns": ms(100), "end_ns": ms(1000)},
               netlink=[link(50, "link_new", 9, "old0", "down"),
                        link(120, "link_new", 9, "old0", "up")])
    r = analyze_json(tr, profile="generic")
    assert not any("old0" in m["name"] for m in r["milestones"])


def test_k3s_profile_names_the_network_milestones() -> None:
    r = analyze_json(net_trace("k3s"), profile="k3s")
    got = {m["name"]: m["ts_ns"] for m in r["milestones"]}
    assert got["cni0 has an address"] == ms(250)
    assert got["flannel.1 up"] == ms(260)
    assert got["cni0 up"] == ms(300)


def test_end_at_a_network_milestone() -> None:
    r = analyze_json(net_trace(), profile="generic", end="addr:cni0")
    assert r["end_reached"] and r["end_ns"] == ms(250)
    r = analyze_json(net_trace(), profile="generic", start="link-up:flannel.1", end="link-up:cni0")
    assert (r["start_ns"], r["end_ns"], r["total_ns"]) == (ms(260), ms(300), ms(40))
    r = analyze_json(net_trace(), profile="generic", end="addr:flannel.1")
    assert not r["end_reached"]


def test_network_milestones_in_the_report() -> None:
    tr = net_trace()
    rep = HtmlReport.from_analysis(analyze(tr, profile="generic"))
    names = [m["name"] for m in rep.payload["analysis"]["milestones"]]
    assert {"cni0 up", "cni0 has an address", "flannel.1 up"} <= set(names)
    events = rep.figures["events"]
    assert "cni0 has an address" in events and "flannel.1 up" in events


def cgroup_trace() -> Any:
    """A k3s.service unit (k3s + its modprobe + containerd), a pod (pause + app, two container
    scopes of one pod) and a process in no unit."""
    cg = [
        dict(ts_ns=ms(100), cgroup_id=11, path="/system.slice/k3s.service", unit="k3s.service"),
        dict(ts_ns=ms(100), cgroup_id=21,
             path=f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/"
                  "cri-containerd-aaaa.scope",
             unit="cri-containerd-aaaa.scope", pod_uid=POD, container_id="aaaa"),
        dict(ts_ns=ms(100), cgroup_id=22,
             path=f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/"
                  "cri-containerd-bbbb.scope",
             unit="cri-containerd-bbbb.scope", pod_uid=POD, container_id="bbbb"),
        dict(ts_ns=ms(100), cgroup_id=1, path="/", unit=None),
    ]

    def cg_(row: dict[str, Any], cid: int) -> dict[str, Any]:
        return {**row, "cgroup_id": cid}

    process = [
        cg_(fork(110, 10, 1, "k3s"), 11), cg_(exec_(111, 10, "k3s", "server"), 11),
        cg_(fork(120, 11, 10, "k3s"), 11), cg_(exec_(121, 11, "modprobe", "overlay"), 11),
        cg_(exit_(130, 11, comm="modprobe"), 11),
        cg_(fork(140, 12, 10, "k3s"), 11), cg_(exec_(141, 12, "containerd"), 11),
        cg_(fork(300, 20, 12, "containerd"), 21), cg_(exec_(301, 20, "pause"), 21),
        cg_(fork(400, 21, 12, "containerd"), 22), cg_(exec_(401, 21, "coredns"), 22),
        cg_(fork(150, 30, 1, "sh"), 1), cg_(exec_(151, 30, "curl"), 1),
        cg_(exit_(170, 30, comm="curl"), 1),
    ]
    socket = [listen(200, 10, 6443), connect(160, 30, 6443, "refused"),
              connect(450, 21, 6443, "ok"), connect(460, 21, 6443, "ok"),
              connect(500, 10, 2379, "ok")]
    return trace(meta={"start_ns": ms(100), "end_ns": ms(1000)}, process=process, socket=socket,
                 cgroup=cg)


def test_groups_per_unit_and_pod() -> None:
    r = analyze_json(cgroup_trace(), profile="generic", scope="all")
    groups = {g["name"]: g for g in r["groups"]}
    assert set(groups) == {"k3s.service", POD, "(no unit)"}
    k3s = groups["k3s.service"]
    assert (k3s["kind"], k3s["unit"], k3s["pod_uid"]) == ("unit", "k3s.service", None)
    assert (k3s["processes"], k3s["execs"], k3s["connects"]) == (3, 3, 1)
    assert (k3s["first_ns"], k3s["last_ns"]) == (ms(110), ms(500))
    pod = groups[POD]  # two container scopes, one pod
    assert (pod["kind"], pod["pod_uid"], pod["unit"]) == ("pod", POD, None)
    assert (pod["processes"], pod["execs"], pod["connects"]) == (2, 2, 2)
    assert (pod["first_ns"], pod["last_ns"]) == (ms(300), ms(460))
    none = groups["(no unit)"]
    assert (none["kind"], none["processes"], none["execs"], none["connects"]) == ("none", 1, 1, 1)
    assert [g["name"] for g in r["groups"]] == ["k3s.service", "(no unit)", POD]  # first activity
    by_pid = {p["pid"]: p for p in r["processes"]}
    assert by_pid[21]["pod_uid"] == POD and by_pid[21]["group"] == POD
    assert by_pid[11]["group"] == "k3s.service" and by_pid[30]["group"] == "(no unit)"


def test_groups_in_text() -> None:
    text = render(analyze(cgroup_trace(), profile="generic", scope="all"))
    section = text.split("By unit / pod\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section[1].split() == ["k3s.service", "3", "3", "1", "+10.0", "+400.0"]
    assert section[3].split()[:2] == ["pod", POD]


def test_no_cgroup_table_means_one_no_unit_group_and_no_text_section() -> None:
    tr = net_trace()
    r = analyze_json(tr, profile="generic")
    assert [(g["name"], g["processes"]) for g in r["groups"]] == [("(no unit)", 1)]
    assert "By unit / pod" not in render(analyze(tr, profile="generic"))


def test_report_timeline_bands_by_unit() -> None:
    from tests.unit.test_report_timeline import timeline

    _fig, layout = timeline(cgroup_trace(), profile="generic", scope="all", end="connect-ok:2379")
    bands = [a["text"] for a in layout["annotations"] if a["text"].startswith("<i>")]
    assert bands == ["<i>k3s.service</i>", "<i>(no unit)</i>", f"<i>pod {POD}</i>"]


def test_report_timeline_bands_by_component_without_units() -> None:
    from tests.unit.test_report_timeline import system_trace, timeline

    _fig, layout = timeline(system_trace(), end="exit:server")
    bands = [a["text"] for a in layout["annotations"] if a["text"].startswith("<i>")]
    assert bands and not any("unit" in b for b in bands)
