"""A k3s-shaped startup as trace tables plus its analysis, shared by the report/compare/export
tests, and tests of the report model (tracer.report.model) on it.

The trace: k3s (argv carrying a join token and a datastore password) re-execs as k3s-server,
runs two modprobe helpers, starts containerd and polls its socket (ENOENT once, then ok 550 ms
after containerd listened), polls the in-process apiserver on 127.0.0.1:6444 (refused twice),
runs iptables, and a process whose name is an HTML injection attempt.

`analysis()` is the real analyzer's answer for it: every reporter test is fed what the analyzer
really emits, so a reporter cannot pass on a shape the analyzer does not produce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.builders import ms, trace
from tracer import units
from tracer.analyzer import Analysis, analyze
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


def _at(scale: float) -> Callable[[float], int]:
    """t() of a run whose every moment is scale times as far from the recording start."""
    return lambda x: T0 + ms(x * scale)


def process_rows(scale: float = 1.0, curl: bool = True) -> list[dict[str, Any]]:
    t = _at(scale)
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
        if comm == "curl" and not curl:
            continue
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


def socket_rows(scale: float = 1.0) -> list[dict[str, Any]]:
    t = _at(scale)
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


def module_rows(scale: float = 1.0) -> list[dict[str, Any]]:
    t = _at(scale)
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


def k3s_trace(
    meta: dict[str, Any] | None = None,
    tmp_path: Any = "k3s-start",
    scale: float = 1.0,
    curl: bool = True,
) -> Trace:
    """The scenario; scale stretches every moment (a slower or faster run), curl=False leaves
    out the curl helper (which the critical path waits for)."""
    return trace(
        tmp_path,
        meta={**META, "end_ns": T0 + ms(5000 * scale), **(meta or {})},
        process=process_rows(scale, curl),
        socket=socket_rows(scale),
        module=module_rows(scale),
    )


def analysis(redact: bool = True, scale: float = 1.0, curl: bool = True) -> Analysis:
    """The real analyzer's answer (k3s profile) for k3s_trace(scale, curl)."""
    return analyze(k3s_trace(scale=scale, curl=curl), profile="k3s", redact=redact)


# ----------------------------------------------------------------------------- model tests


def test_processes_are_redacted_and_flag_the_critical_path() -> None:
    rows = model.processes(analysis())
    k3s = next(r for r in rows if r["pid"] == 100)
    assert k3s["argv"][2] == "--token=<redacted>"
    assert "hunter2pgpass" not in " ".join(k3s["argv"])
    assert (
        k3s["on_critical_path"] and not next(r for r in rows if r["pid"] == 130)["on_critical_path"]
    )


def test_no_redact_keeps_argv() -> None:
    rows = model.processes(analysis(redact=False))
    assert next(r for r in rows if r["pid"] == 100)["argv"] == ["k3s-server", *K3S_ARGV[1:]]


def test_connects_and_listens_come_from_the_trace_in_time_order() -> None:
    v = analysis().views
    c = v.connects
    assert c["ts_ns"] == sorted(c["ts_ns"]) and len(c["ts_ns"]) == 8
    assert c["outcome"][:2] == ["enoent", "ok"]
    assert v.listens["endpoint"] == [
        "0.0.0.0:6443",
        SOCK,
        "127.0.0.1:6444",
        "0.0.0.0:10257",
        "0.0.0.0:10259",
        "0.0.0.0:10250",
    ]


def test_execs_have_program_names_and_redacted_argv() -> None:
    ex = analysis().views.execs
    assert ex["program"][:2] == ["k3s", "k3s-server"]
    assert all("s3cr3tJoinPass" not in " ".join(a) for a in ex["argv"])
    raw = analysis(redact=False).views.execs
    assert any("s3cr3tJoinPass" in " ".join(a) for a in raw["argv"])


def test_facts_warn_about_lost_events_and_unavailable_probes() -> None:
    a = analyze(k3s_trace(meta={"lost_events": 17}), profile="k3s")
    f = model.facts(a)
    assert f["lost_events"] == 17 and f["duration_ns"] == ms(5000)
    assert f["probes_unavailable"] == ["module: kernel built without CONFIG_MODULES"]
    w = model.warnings(f)
    assert any("17 events were lost" in x for x in w)
    assert any("CONFIG_MODULES" in x for x in w)
    assert "<redacted>" in f["command"] and "s3cr3tJoinPass" not in f["command"]


def test_clean_trace_has_no_warnings() -> None:
    a = analyze(k3s_trace(meta={"probes_unavailable": {}}), profile="k3s")
    assert model.warnings(model.facts(a)) == []


def test_end_not_reached_is_a_warning() -> None:
    a = analyze(k3s_trace(), profile="k3s", end="listen:9999")
    assert not a.end_reached and a.critical_path == []
    assert any("never reached" in x for x in model.warnings(model.facts(a)))


def test_composition_sums_the_critical_path() -> None:
    comp = model.composition(model.segments(analysis()))
    assert sum(comp.values()) == ms(3990)
    # containerd's socket: listening at 1400 ms, noticed at the next retry at 1950 ms; the
    # apiserver's :6444: listening at 2500 ms, first ok connect at 2700 ms
    assert comp["wait:poll-lag"] == ms(550) + ms(200)


def test_fmt_ns() -> None:
    assert units.fmt_ns(1_234_567_890) == "1.235 s"
    assert units.fmt_ns(12_340_000) == "12.3 ms"
    assert units.fmt_ns(-456_000) == "-456 µs"
    assert units.fmt_ns(None) == "–"
