"""A k3s-shaped startup as trace tables plus its analysis, shared by the report/compare/export
tests, and tests of the report model (tracer.report.model) on it.

The trace: k3s (argv carrying a join token and a datastore password) re-execs as k3s-server,
runs two modprobe helpers, starts containerd and polls its socket (ENOENT once, then ok 550 ms
after containerd listened), polls the in-process apiserver on 127.0.0.1:6444 (refused twice),
runs iptables, and a process whose name is an HTML injection attempt.

`analysis()` is an analyzer answer for it, hand-computed from the contract in the issue: the
report tests pin their input with it, so they test the report and not the analyzer.
`best_result()` is the real analyzer's answer where tracer.analyzer.analyze exists (used where
only the shape matters: browser and round-trip tests).
"""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tracer.report import model
from tracer.schema import Trace

T0 = ms(1000)  # recording start (CLOCK_MONOTONIC)
TOKEN = "K10f00dfeedcafe::server:s3cr3tJoinPass"
DB_PASSWORD = "hunter2pgpass"
BEARER = "eyJhbGciOiJSUzI1NiJ9.bearerpayload"
EVIL = "</script><img src=x onerror=alert(1)>"
SECRETS = ("s3cr3tJoinPass", DB_PASSWORD, BEARER)

K3S_ARGV = [
    "/usr/local/bin/k3s",
    "server",
    f"--token={TOKEN}",
    f"--datastore-endpoint=postgres://k3s:{DB_PASSWORD}@db:5432/k3s",
    "--write-kubeconfig-mode",
    "644",
]
SOCK = "unix:/run/k3s/containerd/containerd.sock"


def t(x: float) -> int:
    """ms since recording start -> trace ns."""
    return T0 + ms(x)


def process_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        dict(
            ts_ns=t(10),
            kind="exec",
            pid=100,
            tid=100,
            ppid=1,
            comm="k3s",
            filename="/usr/local/bin/k3s",
            argv=K3S_ARGV,
            enter_ns=t(9.9),
        ),
        dict(
            ts_ns=t(50),
            kind="exec",
            pid=100,
            tid=100,
            ppid=1,
            comm="k3s-server",
            filename="/var/lib/rancher/k3s/data/abc/bin/k3s-server",
            argv=["k3s-server", *K3S_ARGV[1:]],
            enter_ns=t(49.9),
        ),
    ]
    helpers = [
        (120, 300, 320, "modprobe", ["modprobe", "br_netfilter"]),
        (121, 320, 335, "modprobe", ["modprobe", "overlay"]),
        (130, 2000, 2010, "iptables", ["iptables", "-t", "nat", "-N", "KUBE-POSTROUTING"]),
        (
            131,
            2900,
            2905,
            "curl",
            ["curl", "-H", f"Authorization: Bearer {BEARER}", "https://127.0.0.1:6443/readyz"],
        ),
        (140, 3000, 3100, EVIL, [EVIL, "--flag"]),
    ]
    for pid, start, end, comm, argv in helpers:
        rows += [
            dict(ts_ns=t(start - 0.2), kind="fork", pid=pid, tid=pid, ppid=100, comm="k3s-server"),
            dict(
                ts_ns=t(start),
                kind="exec",
                pid=pid,
                tid=pid,
                ppid=100,
                comm=comm,
                filename=f"/usr/sbin/{comm}",
                argv=argv,
                enter_ns=t(start - 0.1),
            ),
            dict(ts_ns=t(end), kind="exit", pid=pid, tid=pid, ppid=100, comm=comm, exit_code=0),
        ]
    rows += [
        dict(ts_ns=t(899), kind="fork", pid=110, tid=110, ppid=100, comm="k3s-server"),
        dict(
            ts_ns=t(900),
            kind="exec",
            pid=110,
            tid=110,
            ppid=100,
            comm="containerd",
            filename="/var/lib/rancher/k3s/data/abc/bin/containerd",
            argv=[
                "containerd",
                "-c",
                "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
                "-a",
                "/run/k3s/containerd/containerd.sock",
            ],
            enter_ns=t(899.9),
        ),
    ]
    return rows


def socket_rows() -> list[dict[str, Any]]:
    def connect(
        ts: float,
        pid: int,
        comm: str,
        endpoint: str,
        outcome: str,
        port: int | None,
        errno: int | None = None,
    ) -> dict[str, Any]:
        return dict(
            ts_ns=t(ts),
            kind="connect",
            pid=pid,
            tid=pid,
            comm=comm,
            fd=7,
            family="unix" if endpoint.startswith("unix:") else "inet",
            port=port,
            endpoint=endpoint,
            ret=0 if outcome == "ok" else -(errno or 111),
            ret_ns=t(ts + 0.01),
            outcome=outcome,
            outcome_errno=errno,
            outcome_ns=t(ts + 0.2),
            tcp=not endpoint.startswith("unix:"),
        )

    def listen(ts: float, pid: int, comm: str, endpoint: str, port: int | None) -> dict[str, Any]:
        return dict(
            ts_ns=t(ts),
            kind="listen",
            pid=pid,
            tid=pid,
            comm=comm,
            endpoint=endpoint,
            port=port,
            ret=0,
            family="unix" if port is None else "inet",
        )

    return [
        listen(200, 100, "k3s-server", "0.0.0.0:6443", 6443),
        connect(950, 100, "k3s-server", SOCK, "enoent", None, 2),
        listen(1400, 110, "containerd", SOCK, None),
        connect(1950, 100, "k3s-server", SOCK, "ok", None),
        connect(2100, 100, "k3s-server", "127.0.0.1:6444", "refused", 6444, 111),
        connect(2300, 100, "k3s-server", "127.0.0.1:6444", "refused", 6444, 111),
        listen(2500, 100, "k3s-server", "127.0.0.1:6444", 6444),
        connect(2700, 100, "k3s-server", "127.0.0.1:6444", "ok", 6444),
        connect(2000, 100, "k3s-server", "127.0.0.1:6443", "ok", 6443),
        connect(3000, 100, "k3s-server", "127.0.0.1:6443", "ok", 6443),
        connect(3100, 140, EVIL[:15], f"unix:/tmp/{EVIL}", "refused", None, 111),
        listen(3800, 100, "k3s-server", "0.0.0.0:10257", 10257),
        listen(3900, 100, "k3s-server", "0.0.0.0:10259", 10259),
        listen(4000, 100, "k3s-server", "0.0.0.0:10250", 10250),
    ]


def module_rows() -> list[dict[str, Any]]:
    return [
        dict(
            ts_ns=t(310), kind="load", name="br_netfilter", pid=120, tid=120, comm="modprobe", ret=0
        )
    ]


META = {
    "start_ns": T0,
    "end_ns": t(5000),
    "hostname": "node-1",
    "kernel": "6.18.0",
    "lost_events": 0,
    "complete": True,
    "target_command": K3S_ARGV,
    "probes_unavailable": {"module": "kernel built without CONFIG_MODULES"},
}


def k3s_trace(meta: dict[str, Any] | None = None, tmp_path: Any = "k3s-start") -> Trace:
    return trace(
        tmp_path,
        meta={**META, **(meta or {})},
        process=process_rows(),
        socket=socket_rows(),
        module=module_rows(),
    )


def _proc(
    pid: int,
    comm: str,
    argv: list[str],
    start: float,
    end: float | None,
    component: str,
    exit_code: int | None = 0,
) -> dict[str, Any]:
    return dict(
        key=f"{pid}@{t(start)}",
        pid=pid,
        parent_key=None if pid == 100 else "100@x",
        comm=comm,
        exe=argv[0],
        argv=argv,
        start_ns=t(start),
        end_ns=None if end is None else t(end),
        exit_code=exit_code,
        exit_signal=None,
        component=component,
        unit="k3s.service",
        threads=1,
    )


def _seg(a: float, b: float, kind: str, label: str, pid: int, comm: str) -> dict[str, Any]:
    return dict(start_ns=t(a), end_ns=t(b), kind=kind, label=label, pid=pid, comm=comm)


def _wait(
    kind: str,
    endpoint: str | None,
    waiter: tuple[int, str],
    target: tuple[int, str],
    first: float | None,
    ready: float | None,
    ok: float | None,
    attempts: int | None,
    interval: float | None,
    lag: float | None,
) -> dict[str, Any]:
    return dict(
        kind=kind,
        endpoint=endpoint,
        waiter={"pid": waiter[0], "comm": waiter[1]},
        target={"pid": target[0], "comm": target[1]},
        first_attempt_ns=None if first is None else t(first),
        ready_ns=None if ready is None else t(ready),
        first_ok_ns=None if ok is None else t(ok),
        attempts=attempts,
        interval_ns=None if interval is None else ms(interval),
        lag_ns=None if lag is None else ms(lag),
    )


def analysis(redact: bool = True, scale: float = 1.0) -> dict[str, Any]:
    """The analyzer's result for k3s_trace(), hand-computed. `scale` stretches the waits
    (a second run that is slower/faster, for compare tests)."""
    from tracer.redact import redact_argv

    argv = redact_argv(K3S_ARGV) if redact else K3S_ARGV
    lag = 550 * scale
    path = [
        _seg(10, 300, "run", "k3s-server", 100, "k3s-server"),
        _seg(300, 335, "wait:child", "modprobe br_netfilter, overlay", 120, "modprobe"),
        _seg(335, 950, "run", "k3s-server", 100, "k3s-server"),
        _seg(950, 1400, "wait:listener", SOCK, 110, "containerd"),
        _seg(1400, 1400 + lag, "wait:poll-lag", SOCK, 100, "k3s-server"),
        _seg(1400 + lag, 4000, "run", "k3s-server", 100, "k3s-server"),
    ]
    return {
        "start_ns": t(10),
        "end_ns": t(4000),
        "total_ns": ms(3990),
        "end_reached": True,
        "profile": "k3s",
        "critical_path": path,
        "waits": [
            _wait(
                "listener",
                SOCK,
                (100, "k3s-server"),
                (110, "containerd"),
                950,
                1400,
                1400 + lag,
                2,
                1000,
                lag,
            ),
            _wait(
                "listener",
                "127.0.0.1:6444",
                (100, "k3s-server"),
                (100, "k3s-server"),
                2100,
                2500,
                2700,
                3,
                200,
                200,
            ),
            _wait(
                "child",
                None,
                (100, "k3s-server"),
                (120, "modprobe"),
                300,
                None,
                320,
                None,
                None,
                None,
            ),
            _wait(
                "poll",
                "127.0.0.1:6443",
                (100, "k3s-server"),
                (100, "k3s-server"),
                2000,
                None,
                None,
                2,
                1000,
                None,
            ),
        ],
        "milestones": [
            {"name": "k3s exec", "ts_ns": t(10)},
            {"name": "containerd listen", "ts_ns": t(1400)},
            {"name": "apiserver listen 6444", "ts_ns": t(2500)},
            {"name": "kubelet listen 10250", "ts_ns": t(4000)},
        ],
        "phases": [
            {
                "name": "containerd start → first API readiness check",
                "start_ns": t(900),
                "end_ns": t(2000 * scale),
                "duration_ns": ms(2000 * scale - 900),
                "start_event": "exec containerd",
                "end_event": "connect 127.0.0.1:6443",
            },
            {
                "name": "API server start → ready",
                "start_ns": t(2500),
                "end_ns": t(2700),
                "duration_ns": ms(200),
                "start_event": "listen 127.0.0.1:6444",
                "end_event": "first ok connect 127.0.0.1:6444",
            },
        ],
        "counts": {"processes": 8, "execs": 8, "connects": 9, "listens": 6},
        "lost_events": 0,
        "processes": [
            _proc(100, "k3s-server", argv, 10, None, "k3s", None),
            _proc(
                110,
                "containerd",
                ["containerd", "-c", "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"],
                900,
                None,
                "containerd",
                None,
            ),
            _proc(120, "modprobe", ["modprobe", "br_netfilter"], 300, 320, "modprobe"),
            _proc(121, "modprobe", ["modprobe", "overlay"], 320, 335, "modprobe"),
            _proc(
                130,
                "iptables",
                ["iptables", "-t", "nat", "-N", "KUBE-POSTROUTING"],
                2000,
                2010,
                "iptables",
            ),
            _proc(
                131,
                "curl",
                ["curl", "-H", f"Authorization: Bearer {BEARER}", "https://127.0.0.1:6443/readyz"],
                2900,
                2905,
                "other",
            ),
            _proc(140, EVIL, [EVIL, "--flag"], 3000, 3100, "other"),
        ],
        "trace": {
            "hostname": "node-1",
            "kernel": "6.18.0",
            "lost_events": 0,
            "probes_unavailable": {"module": "kernel built without CONFIG_MODULES"},
        },
    }


def best_result(trace: Trace, redact: bool = True) -> dict[str, Any]:
    """The real analyzer's result when it is in the tree, else the hand-computed one."""
    if real_analyzer_available():
        from tracer.analyzer import analyze

        return analyze(trace, redact=redact)  # type: ignore[no-any-return]
    return analysis(redact=redact)


def real_analyzer_available() -> bool:
    try:
        from tracer import analyzer
    except ImportError:
        return False
    return hasattr(analyzer, "analyze")


# ----------------------------------------------------------------------------- model tests


def test_processes_are_redacted_and_flag_the_critical_path() -> None:
    rows = model.processes(analysis(redact=False), redact=True)
    k3s = next(r for r in rows if r["pid"] == 100)
    assert k3s["argv"][2] == "--token=<redacted>"
    assert "hunter2pgpass" not in " ".join(k3s["argv"])
    assert (
        k3s["on_critical_path"] and not next(r for r in rows if r["pid"] == 130)["on_critical_path"]
    )


def test_no_redact_keeps_argv() -> None:
    rows = model.processes(analysis(redact=False), redact=False)
    assert next(r for r in rows if r["pid"] == 100)["argv"] == K3S_ARGV


def test_connects_and_listens_come_from_the_trace_in_time_order() -> None:
    tr = k3s_trace()
    c = model.connects(tr)
    assert c["ts_ns"] == sorted(c["ts_ns"]) and len(c["ts_ns"]) == 8
    assert c["outcome"][:2] == ["enoent", "ok"]
    ls = model.listens(tr)
    assert ls["endpoint"] == [
        "0.0.0.0:6443",
        SOCK,
        "127.0.0.1:6444",
        "0.0.0.0:10257",
        "0.0.0.0:10259",
        "0.0.0.0:10250",
    ]


def test_execs_have_program_names_and_redacted_argv() -> None:
    ex = model.execs(k3s_trace())
    assert ex["program"][:2] == ["k3s", "k3s-server"]
    assert all("s3cr3tJoinPass" not in " ".join(a) for a in ex["argv"])
    raw = model.execs(k3s_trace(), redact=False)
    assert any("s3cr3tJoinPass" in " ".join(a) for a in raw["argv"])


def test_facts_warn_about_lost_events_and_unavailable_probes() -> None:
    f = model.facts(k3s_trace(meta={"lost_events": 17}), analysis())
    assert f["lost_events"] == 17 and f["duration_ns"] == ms(5000)
    assert f["probes_unavailable"] == ["module: kernel built without CONFIG_MODULES"]
    w = model.warnings(f)
    assert any("17 events were lost" in x for x in w)
    assert any("CONFIG_MODULES" in x for x in w)
    assert "<redacted>" in f["command"] and "s3cr3tJoinPass" not in f["command"]


def test_clean_trace_has_no_warnings() -> None:
    result = analysis()
    result["trace"] = {"hostname": "node-1"}
    assert model.warnings(model.facts(k3s_trace(meta={"probes_unavailable": {}}), result)) == []


def test_end_not_reached_is_a_warning() -> None:
    result = {**analysis(), "end_reached": False, "critical_path": []}
    w = model.warnings(model.facts(k3s_trace(), result))
    assert any("never reached" in x for x in w)


def test_composition_sums_the_critical_path() -> None:
    comp = model.composition(model.segments(analysis()))
    assert sum(comp.values()) == ms(3990)
    assert comp["wait:listener"] == ms(450) and comp["wait:poll-lag"] == ms(550)


def test_phases_accept_a_mapping_and_compute_durations() -> None:
    rows = model.phases({"phases": {"b": {"start_ns": 5, "end_ns": 9}, "a": {"duration_ns": 3}}})
    assert [(r["name"], r["duration_ns"]) for r in rows] == [("a", 3), ("b", 4)]


def test_fmt_ns() -> None:
    assert model.fmt_ns(1_234_567_890) == "1.235 s"
    assert model.fmt_ns(12_340_000) == "12.3 ms"
    assert model.fmt_ns(-456_000) == "-456 µs"
    assert model.fmt_ns(None) == "–"
