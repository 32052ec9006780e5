"""Analyzer on synthetic tables with hand-computed answers (no root, no BPF)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.builders import analyze_json, ms, trace
from tracer._errors import UsageError


def fork(t: float, pid: int, ppid: int, comm: str = "sh") -> dict[str, Any]:
    return dict(ts_ns=ms(t), kind="fork", pid=pid, tid=pid, ppid=ppid, comm=comm)


def exec_(t: float, pid: int, name: str, *args: str) -> dict[str, Any]:
    return dict(ts_ns=ms(t), kind="exec", pid=pid, tid=pid, comm=name[:15],
                filename=f"/usr/bin/{name}", argv=[name, *args])


def exit_(t: float, pid: int, code: int = 0, comm: str | None = None) -> dict[str, Any]:
    return dict(ts_ns=ms(t), kind="exit", pid=pid, tid=pid, exit_code=code, comm=comm)


def connect(t: float, pid: int, port: int | str, outcome: str, addr: str = "127.0.0.1"
            ) -> dict[str, Any]:
    if isinstance(port, str):  # unix path
        return dict(ts_ns=ms(t), kind="connect", pid=pid, family="unix", addr=port,
                    endpoint=f"unix:{port}", outcome=outcome, ret=0 if outcome == "ok" else -2)
    ep = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
    return dict(ts_ns=ms(t), kind="connect", pid=pid, family="inet6" if ":" in addr else "inet",
                addr=addr, port=port, endpoint=ep, outcome=outcome, tcp=True, ret=-115,
                outcome_ns=ms(t) + 50_000)


def listen(t: float, pid: int, port: int | str, addr: str = "0.0.0.0") -> dict[str, Any]:
    if isinstance(port, str):
        return dict(ts_ns=ms(t), kind="listen", pid=pid, family="unix", addr=port,
                    endpoint=f"unix:{port}", ret=0)
    ep = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
    return dict(ts_ns=ms(t), kind="listen", pid=pid, family="inet6" if ":" in addr else "inet",
                addr=addr, port=port, endpoint=ep, ret=0)


def waits_of(r: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [w for w in r["waits"] if w["kind"] == kind]


def check_path(r: dict[str, Any]) -> None:
    """Segments are contiguous and sum exactly to end - start."""
    segs = r["critical_path"]
    assert segs[0]["start_ns"] == r["start_ns"]
    assert segs[-1]["end_ns"] == r["end_ns"]
    for a, b in itertools.pairwise(segs):
        assert a["end_ns"] == b["start_ns"]
    assert sum(s["duration_ns"] for s in segs) == r["total_ns"] == r["end_ns"] - r["start_ns"]


# --- a planted listener wait: server listens at 450 ms, client retries every 100 ms -----------

def server_client(client_polls_after_ok: int = 0) -> Any:
    n_fail = 5  # attempts at 10, 110, 210, 310, 410 are refused; 510 is the first ok
    sock = [connect(10 + 100 * i, 12, 8080, "refused" if i < n_fail else "ok")
            for i in range(n_fail + 1 + client_polls_after_ok)]
    sock.append(listen(450, 11, 8080))
    last = 10 + 100 * (n_fail + client_polls_after_ok)
    return trace(
        meta={"start_ns": 0, "end_ns": ms(3000), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "sh", "-c", "x"),
                 fork(2, 11, 10), exec_(3, 11, "server"),
                 fork(4, 12, 10), exec_(5, 12, "client", "--token", "hunter2"),
                 exit_(last + 90, 12), exit_(last + 100, 11), exit_(last + 101, 10)],
        socket=sock,
    )


def test_listener_wait_exact_fields() -> None:
    r = analyze_json(server_client())
    (w,) = waits_of(r, "listener")
    assert w["waiter"]["pid"] == 12 and w["target"]["pid"] == 11
    assert w["endpoint"] == "127.0.0.1:8080"
    assert w["attempts"] == 6  # five refused + the first ok
    assert w["first_attempt_ns"] == ms(10)
    assert w["ready_ns"] == ms(450)
    assert w["first_ok_ns"] == ms(510)
    assert w["lag_ns"] == ms(60)
    assert w["interval_ns"] == ms(100)
    assert w["outcomes"] == {"ok": 1, "refused": 5}
    assert not waits_of(r, "poll")  # the retries stop at the first ok: not a poll loop


def test_listener_wait_critical_path_goes_through_the_listener() -> None:
    r = analyze_json(server_client())
    assert r["end_reached"] and r["end_by"] == "exit of the recorded command"
    check_path(r)
    kinds = [(s["kind"], s["pid"], s["start_ns"], s["end_ns"]) for s in r["critical_path"]]
    # sh runs until it forks the server at 2 ms; the server's startup until its listen; the
    # client notices at its next retry (poll-lag); then the client's own work until it exits.
    assert ("run", 11, ms(2), ms(450)) in kinds
    assert ("wait:poll-lag", 12, ms(450), ms(510)) in kinds
    assert kinds[0] == ("run", 10, ms(1), ms(2))  # start = the command's first exec


def test_listener_then_poll_is_one_wait() -> None:
    r = analyze_json(server_client(client_polls_after_ok=3))
    assert not waits_of(r, "listener")
    (w,) = waits_of(r, "poll")
    assert w["attempts"] == 9
    assert w["outcomes"] == {"ok": 4, "refused": 5}
    assert w["ready_ns"] == ms(450) and w["first_ok_ns"] == ms(510) and w["lag_ns"] == ms(60)
    assert w["last_attempt_ns"] == w["ended_ns"] == ms(810)
    check_path(r)
    kinds = [(s["kind"], s["start_ns"], s["end_ns"]) for s in r["critical_path"]]
    assert ("wait:poll", ms(510), ms(810)) in kinds
    assert ("wait:poll-lag", ms(450), ms(510)) in kinds


def test_secrets_redacted_by_default_and_kept_with_no_redact() -> None:
    r = analyze_json(server_client())
    client = next(p for p in r["processes"] if p["pid"] == 12)
    assert "hunter2" not in repr(r)
    assert client["argv"][:2] == ["client", "--token"]
    r2 = analyze_json(server_client(), redact=False)
    assert next(p for p in r2["processes"] if p["pid"] == 12)["argv"][-1] == "hunter2"


# --- process tree ------------------------------------------------------------------------------

def test_pid_reuse_gives_two_instances_and_events_go_to_the_right_one() -> None:
    tr = trace(
        meta={"start_ns": 0},
        process=[fork(0, 50, 1), exec_(1, 50, "first"), exit_(10, 50, comm="first"),
                 fork(20, 50, 1), exec_(21, 50, "second"), exit_(40, 50, comm="second")],
        socket=[connect(5, 50, 9000, "refused"), connect(6, 50, 9000, "refused"),
                connect(30, 50, 9000, "ok")],
    )
    r = analyze_json(tr, end="exit:second")
    firsts = [p for p in r["processes"] if p["pid"] == 50]
    assert [p["key"] for p in firsts] == [f"50@{ms(0)}", f"50@{ms(20)}"]
    assert [p["comm"] for p in firsts] == ["first", "second"]
    assert [p["end_ns"] for p in firsts] == [ms(10), ms(40)]
    # the refused connects belong to the first instance, which never got an ok: a wait that
    # never succeeds; the second instance's ok connect is not its end
    (w,) = waits_of(r, "listener")
    assert w["waiter"]["key"] == f"50@{ms(0)}"
    assert w["first_ok_ns"] is None and w["end_ns"] is None and w["attempts"] == 2


def test_exec_in_same_pid_is_one_process_with_an_exec_chain() -> None:
    tr = trace(
        meta={"start_ns": 0},
        process=[fork(0, 7, 1, "bash"), exec_(1, 7, "k3s", "server"),
                 exec_(2, 7, "k3s-server", "server"), fork(5, 8, 7, "k3s-server"),
                 exec_(6, 8, "containerd", "-c", "x.toml")],
    )
    r = analyze_json(tr)
    assert r["profile"] == "k3s"  # auto-detected from the exec names
    (k3s,) = [p for p in r["processes"] if p["pid"] == 7]
    assert [e["filename"] for e in k3s["execs"]] == ["/usr/bin/k3s", "/usr/bin/k3s-server"]
    assert k3s["comm"] == "k3s-server" and k3s["component"] == "k3s"
    (ctrd,) = [p for p in r["processes"] if p["pid"] == 8]
    assert ctrd["parent_key"] == k3s["key"] and ctrd["component"] == "containerd"


def test_snapshot_gives_processes_alive_at_attach() -> None:
    tr = trace(
        meta={"start_ns": ms(100)},
        snapshot=[dict(ts_ns=ms(100), pid=1, ppid=0, comm="init", exe="/sbin/init", start_ns=0),
                  dict(ts_ns=ms(100), pid=30, ppid=1, comm="k3s-server", exe="/usr/bin/k3s",
                       argv=["k3s", "server", "--token", "s3cret"], start_ns=ms(50))],
        process=[fork(120, 31, 30, "k3s-server"), exec_(121, 31, "modprobe", "overlay"),
                 exit_(130, 31)],
    )
    r = analyze_json(tr)
    k = next(p for p in r["processes"] if p["pid"] == 30)
    assert k["key"] == f"30@{ms(50)}" and k["from_snapshot"] and k["end_ns"] is None
    assert k["parent_key"] == "1@0"
    assert "s3cret" not in repr(r)
    mp = next(p for p in r["processes"] if p["pid"] == 31)
    assert mp["parent_key"] == k["key"] and mp["component"] == "kernel-modules"


# --- waits -----------------------------------------------------------------------------------

def test_overlapping_waits_on_two_endpoints_path_follows_the_later_one() -> None:
    # client A (20) waits for B's :7001 (listen 300), client A also waits for C's :7002
    # (listen 600); both overlap in time; A's end depends on the later one.
    sock = ([connect(10 + 50 * i, 20, 7001, "refused" if 10 + 50 * i < 300 else "ok")
             for i in range(7)]
            + [connect(15 + 100 * i, 20, 7002, "refused" if 15 + 100 * i < 600 else "ok")
               for i in range(7)]
            + [listen(300, 21, 7001), listen(600, 22, 7002)])
    tr = trace(
        meta={"start_ns": 0},
        process=[fork(0, 20, 1, "a"), fork(1, 21, 1, "b"), fork(2, 22, 1, "c"),
                 exit_(700, 20, comm="a"), exit_(800, 21), exit_(800, 22)],
        socket=sock,
    )
    r = analyze_json(tr, end="exit:a")
    ls = sorted(waits_of(r, "listener"), key=lambda w: w["endpoint"])
    assert [(w["endpoint"], w["ready_ns"], w["first_ok_ns"], w["attempts"]) for w in ls] == [
        ("127.0.0.1:7001", ms(300), ms(310), 7), ("127.0.0.1:7002", ms(600), ms(615), 7)]
    check_path(r)
    # c's parent (pid 1) is not in the trace: the time before c's fork is unattributable
    assert [(s["kind"], s["pid"], s["start_ns"], s["end_ns"]) for s in r["critical_path"]] == [
        ("wait:unknown", None, 0, ms(2)), ("run", 22, ms(2), ms(600)),
        ("wait:poll-lag", 20, ms(600), ms(615)), ("run", 20, ms(615), ms(700))]


def test_poller_that_never_succeeds() -> None:
    tr = trace(
        meta={"start_ns": 0, "end_ns": ms(1000)},
        process=[fork(0, 40, 1, "poller")],
        socket=[connect(100 * i, 40, "/run/x.sock", "enoent") for i in range(1, 9)],
    )
    r = analyze_json(tr)
    (w,) = waits_of(r, "listener")
    assert w["endpoint"] == "unix:/run/x.sock" and w["attempts"] == 8
    assert w["first_ok_ns"] is None and w["ready_ns"] is None and w["lag_ns"] is None
    assert "never succeeded" in w["reason"] and w["end_ns"] is None
    assert w["interval_ns"] == ms(100)
    assert not waits_of(r, "poll")  # its regular retries are part of this one wait


def test_end_never_reached_gives_no_path() -> None:
    r = analyze_json(server_client(), end="listen:9999")
    assert r["end_reached"] is False and r["critical_path"] == []
    assert r["end_ns"] is None and r["total_ns"] is None


def test_k3s_default_end_never_reached() -> None:
    tr = trace(meta={"start_ns": 0}, process=[fork(0, 7, 1), exec_(1, 7, "k3s", "server")],
               socket=[listen(5, 7, 6443)])
    r = analyze_json(tr)
    assert r["profile"] == "k3s" and not r["end_reached"] and r["critical_path"] == []


def test_ipv4_connect_matches_wildcard_v6_listen_but_not_other_port() -> None:
    sock = [connect(10 * i, 60, 5000, "refused" if i < 4 else "ok") for i in range(1, 5)]
    sock += [listen(5, 61, 5001, "::"), listen(35, 61, 5000, "::")]
    tr = trace(meta={"start_ns": 0}, process=[fork(0, 60, 1), fork(0, 61, 1)], socket=sock)
    (w,) = waits_of(analyze_json(tr), "listener")
    assert w["ready_ns"] == ms(35) and w["target"]["pid"] == 61


def test_failure_while_already_listening_is_not_a_listener_wait() -> None:
    sock = [listen(1, 61, 5000), connect(10, 60, 5000, "reset"), connect(20, 60, 5000, "ok")]
    tr = trace(meta={"start_ns": 0}, process=[fork(0, 60, 1), fork(0, 61, 1)], socket=sock)
    assert not waits_of(analyze_json(tr), "listener")


def test_regular_poller_is_a_poll_and_irregular_client_is_not() -> None:
    # A: a readiness poller, every 200 ms (+-1 ms), all connects ok (HTTP 503 until ready)
    a = [connect(100 + 200 * i + (i % 3 - 1) * 1.0, 70, 8443, "ok") for i in range(8)]
    # B: ordinary traffic from another process to the same endpoint, no cadence
    b_times = [105, 112, 160, 410, 433, 702, 950, 980, 1310, 1330, 1390, 1700]
    b = [connect(t, 71, 8443, "ok") for t in b_times]
    tr = trace(meta={"start_ns": 0, "end_ns": ms(3000)},
               process=[fork(0, 70, 1, "poller"), fork(0, 71, 1, "worker"), exit_(1600, 70)],
               socket=a + b + [listen(1, 72, 8443)])
    polls = waits_of(analyze_json(tr), "poll")
    assert len(polls) == 1
    (p,) = polls
    assert p["waiter"]["pid"] == 70 and p["attempts"] == 8
    assert abs(p["interval_ns"] - ms(200)) <= ms(1)
    assert p["first_attempt_ns"] == a[0]["ts_ns"] and p["ended_ns"] == a[-1]["ts_ns"]
    assert p["outcomes"] == {"ok": 8} and p["confidence"] > 0.9
    assert p["target"]["pid"] == 72


def test_poll_found_through_interleaved_traffic_of_the_same_process() -> None:
    # k3s's readiness poller shares the k3s process with other clients of :6443
    polls = [connect(1000 + 2000 * i, 7, 6443, "ok") for i in range(6)]
    other = [connect(t, 7, 6443, "ok") for t in (1300, 4100, 4150, 8800)]
    tr = trace(meta={"start_ns": 0, "end_ns": ms(20000)},
               process=[fork(0, 7, 1), exec_(1, 7, "k3s", "server")],
               socket=polls + other + [listen(500, 7, 6443)])
    (p,) = waits_of(analyze_json(tr), "poll")
    assert p["attempts"] == 6 and p["interval_ns"] == ms(2000)
    assert p["ended_ns"] == ms(11000)


def test_child_and_module_helper_waits() -> None:
    tr = trace(
        meta={"start_ns": 0, "command_pid": 7},
        process=[fork(0, 7, 1), exec_(1, 7, "k3s", "server"),
                 fork(10, 8, 7), exec_(11, 8, "modprobe", "overlay"), exit_(50, 8),
                 fork(60, 9, 7), exec_(61, 9, "iptables", "-L"), exit_(90, 9)],
        socket=[listen(95, 7, 10250), listen(96, 7, 10259), listen(100, 7, 10257)],
    )
    r = analyze_json(tr)
    children = waits_of(r, "child")
    assert [(w["target"]["pid"], w["start_ns"], w["end_ns"]) for w in children] == [
        (8, ms(10), ms(50)), (9, ms(60), ms(90))]
    assert r["end_ns"] == ms(100) and r["start_ns"] == ms(1)  # k3s: last of the 3 listens
    check_path(r)
    assert [(s["kind"], s["pid"], s["start_ns"], s["end_ns"]) for s in r["critical_path"]] == [
        ("run", 7, ms(1), ms(10)), ("wait:module", 8, ms(10), ms(50)),
        ("run", 7, ms(50), ms(60)), ("wait:child", 9, ms(60), ms(90)),
        ("run", 7, ms(90), ms(100))]


def test_k3s_phases_and_missing_phase() -> None:
    polls = [connect(3000 + 2000 * i, 7, 6443, "ok") for i in range(4)]  # 3,5,7,9 s
    tr = trace(
        meta={"start_ns": 0, "end_ns": ms(20000)},
        process=[fork(0, 7, 1), exec_(100, 7, "k3s", "server"),
                 fork(1000, 8, 7), exec_(1001, 8, "containerd")],
        socket=[listen(500, 7, 6443), *polls, listen(4000, 7, 6444, "127.0.0.1"),
                listen(9500, 7, 10257, "127.0.0.1"), listen(9600, 7, 10250)],
    )
    r = analyze_json(tr)
    ph = {p["name"].split(" ")[0] + p["name"].split(" ")[1]: p for p in r["phases"]}
    assert ph["containerdstart"]["duration_ns"] == ms(3000 - 1001)
    api = ph["APIserver"]
    assert api["start_ns"] == ms(4000) and api["end_ns"] == ms(9000)
    assert api["end_event"]["spec"] == "poll-end:6443"
    assert ph["controller-managerstart"]["duration_ns"] == ms(9500 - 100)
    sched = ph["schedulerstart"]
    assert sched["duration_ns"] is None and "listen:10259" in sched["missing"]
    assert r["end_ns"] == ms(9600)  # last present of 10250/10259/10257
    names = [m["name"] for m in r["milestones"]]
    assert "kube-apiserver listening :6444" in names and "API readiness poll ended" in names


def test_custom_profile_file_and_bad_profile(tmp_path: Any) -> None:
    f = tmp_path / "mine.json"
    f.write_text('{"name": "mine", "components": [{"component": "web", "exe": ["server"]}],'
                 ' "end": ["listen:8080"]}')
    r = analyze_json(server_client(), profile=str(f))
    assert r["profile"] == "mine" and r["end_ns"] == ms(450)
    assert next(p for p in r["processes"] if p["pid"] == 11)["component"] == "web"
    with pytest.raises(UsageError, match="unknown profile"):
        analyze_json(server_client(), profile="nope")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="invalid JSON"):
        analyze_json(server_client(), profile=str(tmp_path / "bad.json"))


def test_bad_condition_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown condition"):
        analyze_json(server_client(), end="bogus:1")


def test_start_condition_and_lost_events_reported() -> None:
    tr = server_client()
    tr.meta["lost_events"] = 12
    r = analyze_json(tr, start="listen:8080")
    assert r["start_ns"] == ms(450) and r["lost_events"] == 12
    check_path(r)
