"""The analysis of stacks into k3s components (issue 23 part 4), on synthetic traces whose
truth is planted by construction: one k3s-like process whose kubelet polls its own
kube-apiserver, whose apiserver is on the CPU, whose kubelet forks iptables and whose kine
fsyncs. Each JSON key of docs/analyze.md "Stacks" is checked against what was planted."""

from __future__ import annotations

from typing import Any

from tests.builders import analyze_json, ms, trace
from tracer import schema

K3S, IPT = 100, 200
BIN = "go:k3sbuild"
GOEXIT, KUBELET, APISERVER, DIAL, KINE, FSYNC, EXEC, SCHED, SHA = (
    0x401000 + 0x1000 * i for i in range(9)
)
FUNCS = {
    GOEXIT: "runtime.goexit",
    KUBELET: "k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run",
    APISERVER: "k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run",
    DIAL: "net.(*sysDialer).dialSerial",
    KINE: "github.com/k3s-io/kine/pkg/drivers/sqlite.(*DB).Exec",
    FSYNC: "syscall.fsync",
    EXEC: "os/exec.(*Cmd).Start",
    SCHED: "k8s.io/kubernetes/pkg/scheduler.New",
    SHA: "crypto/sha256.block",
}
#: stack id -> PCs innermost first
STACKS = {
    1: [DIAL, KUBELET, GOEXIT],  # kubelet connects
    2: [APISERVER, GOEXIT],  # apiserver: listen and on-CPU
    3: [FSYNC, KINE, GOEXIT],  # kine fsyncs
    4: [EXEC, KUBELET, GOEXIT],  # kubelet forks iptables
    5: [DIAL, SCHED, GOEXIT],  # the scheduler connects too
    6: [0x409999],  # one frame, that no symbol names
    # a leaf that used the frame-pointer register for data (Go's sha256 assembly): the walk's
    # "caller" is a SHA-256 constant, outside every mapping
    7: [SHA, 0xE9B5DBA5B5C0FBCF],
}


def _rows(*, stacks: bool = True, sched: bool = False, symbols: bool = True,
          binaries: list[dict[str, Any]] | None = None) -> dict[str, list[dict[str, Any]]]:
    proc = [
        dict(ts_ns=0, kind="exec", pid=K3S, tid=K3S, comm="k3s", filename="/usr/bin/k3s"),
        dict(ts_ns=ms(600), kind="fork", pid=IPT, tid=IPT, ppid=K3S, comm="k3s"),
        dict(ts_ns=ms(601), kind="exec", pid=IPT, tid=IPT, comm="iptables",
             filename="/usr/sbin/iptables"),
        dict(ts_ns=ms(700), kind="exit", pid=IPT, tid=IPT, comm="iptables", exit_code=0),
    ]
    sock: list[dict[str, Any]] = [
        dict(ts_ns=ms(250), kind="listen", pid=K3S, tid=104, family="inet", addr="0.0.0.0",
             port=6443, endpoint="0.0.0.0:6443", ret=0, ret_ns=ms(250)),
    ]
    samples: list[dict[str, Any]] = [
        dict(ts_ns=ms(250), kind="listen", pid=K3S, tid=104, stack_id=2),
        dict(ts_ns=ms(600), kind="fork", pid=K3S, tid=101, stack_id=4),
    ]
    for i in range(6):  # kubelet: every 100 ms, refused until the listen at 250 ms
        t = ms(100 * i)
        sock.append(dict(ts_ns=t, kind="connect", pid=K3S, tid=103, family="inet",
                         addr="127.0.0.1", port=6443, endpoint="127.0.0.1:6443", tcp=True,
                         outcome="refused" if t < ms(250) else "ok", outcome_ns=t + 1000,
                         ret=-115, ret_ns=t + 500))
        samples.append(dict(ts_ns=t, kind="connect", pid=K3S, tid=103, stack_id=1))
    for t in (ms(130), ms(160), ms(410), ms(440), ms(470)):  # the scheduler, irregular
        sock.append(dict(ts_ns=t, kind="connect", pid=K3S, tid=105, family="inet",
                         addr="127.0.0.1", port=6443, endpoint="127.0.0.1:6443", tcp=True,
                         outcome="refused" if t < ms(250) else "ok", outcome_ns=t + 1000,
                         ret=-115, ret_ns=t + 500))
        samples.append(dict(ts_ns=t, kind="connect", pid=K3S, tid=105, stack_id=5))
    for i in range(12):  # the apiserver on the CPU, 50 Hz, 0-240 ms
        samples.append(dict(ts_ns=ms(20 * i), kind="cpu", pid=K3S, tid=101, cpu=0, stack_id=2))
    for i in range(4):  # kine on the CPU, 500-580 ms, and one one-frame stack
        samples.append(dict(ts_ns=ms(505 + 20 * i), kind="cpu", pid=K3S, tid=106, cpu=1,
                            stack_id=3 if i else 6))
    samples.append(dict(ts_ns=ms(900), kind="cpu", pid=K3S, tid=107, cpu=1, stack_id=7))
    samples.append(dict(ts_ns=ms(620), kind="cpu", pid=K3S, tid=101, cpu=0, stack_error=-14))
    blockio = [dict(ts_ns=ms(510), end_ns=ms(530), kind="fsync", pid=K3S, tid=106, ret=0)]
    samples.append(dict(ts_ns=ms(510), kind="fsync", pid=K3S, tid=106, stack_id=3))
    out: dict[str, list[dict[str, Any]]] = {"process": proc, "socket": sock, "blockio": blockio}
    if stacks:
        out["samples"] = samples
        out["stacks"] = [dict(stack_id=k, frames=v) for k, v in STACKS.items()]
        # file_offset = start: the file-offset addresses SYMBOLS holds equal the PCs here
        out["mappings"] = [dict(ts_ns=0, pid=K3S, start=0x400000, end=0x800000,
                                file_offset=0x400000, path="/usr/bin/k3s", binary=BIN)]
        out["binaries"] = binaries if binaries is not None else [
            dict(binary=BIN, path="/usr/bin/k3s", symbolizer="gopclntab", arch="x86_64")]
        # a leaf frame is looked up at its PC, a caller at PC - 1 (inside the call)
        out["symbols"] = [dict(binary=BIN, address=a - d, depth=0, function=f)
                          for a, f in FUNCS.items() for d in (0, 1)] if symbols else []
    if sched:
        out["sched"] = [
            dict(start_ns=0, end_ns=ms(250), pid=K3S, tid=101, state="cpu", cpu_ns=ms(250),
                 runqueue_ns=0, io_ns=0, sleep_ns=0, other_ns=0, origin="bpf"),
            dict(start_ns=ms(250), end_ns=ms(1000), pid=K3S, tid=101, state="sleep", cpu_ns=0,
                 runqueue_ns=0, io_ns=0, sleep_ns=ms(750), other_ns=0, origin="bpf"),
            dict(start_ns=ms(600), end_ns=ms(700), pid=IPT, tid=IPT, state="cpu",
                 cpu_ns=ms(100), runqueue_ns=0, io_ns=0, sleep_ns=0, other_ns=0, origin="bpf",
                 exited=True),
        ]
    return out


META = {"end_ns": ms(1000), "complete": True, "stacks": {"sample_hz": 50}}


def _analysis(**kw: Any) -> dict[str, Any]:
    return analyze_json(trace(meta=META, **_rows(**kw)), profile="k3s", end="exit:iptables")


def _poll(a: dict[str, Any]) -> dict[str, Any]:
    (w,) = [w for w in a["waits"] if w["kind"] == "poll"]
    return w


def test_a_poll_between_two_components_of_one_process_is_a_wait() -> None:
    a = _analysis()
    w = _poll(a)
    assert w["waiter"]["pid"] == w["target"]["pid"] == K3S
    assert w["waiter_component"] == "kubelet"
    assert w["target_component"] == "kube-apiserver"
    assert w["attempts"] == 6 and w["interval_ns"] == ms(100)  # the scheduler's are not in it


def test_without_stacks_the_same_connects_are_one_process_s() -> None:
    a = _analysis(stacks=False)
    assert all("waiter_component" not in w for w in a["waits"])
    assert "stacks" not in a
    assert all("components" not in s for s in a["critical_path"])
    assert all("spawned_by_component" not in p for p in a["processes"])


def test_segments_carry_on_cpu_components_from_samples() -> None:
    a = _analysis()
    (run,) = [s for s in a["critical_path"] if s["kind"] == "run" and s["start_ns"] == 0]
    assert run["components_from"] == "samples"
    assert run["components"] == {"kube-apiserver": 12 * ms(20)}  # 12 samples at 50 Hz
    assert run["components_of"]["pid"] == K3S
    assert run["components_hot"] == {"kube-apiserver": FUNCS[APISERVER]}


def test_with_sched_components_sum_to_the_segment_s_cpu() -> None:
    a = _analysis(sched=True)
    with_states = [s for s in a["critical_path"] if "states" in s]
    assert with_states
    for s in with_states:
        assert s["components_from"] == "sched"
        assert s["components_of"] == s["states_of"]
        assert sum(s["components"].values()) == s["states"]["cpu"]
    (run,) = [s for s in with_states if s["start_ns"] == 0]
    assert run["components"] == {"kube-apiserver": run["states"]["cpu"]}


def test_the_helper_names_the_component_that_spawned_it() -> None:
    a = _analysis()
    (ipt,) = [p for p in a["processes"] if p["pid"] == IPT]
    assert ipt["spawned_by_component"] == "kubelet"
    (k3s,) = [p for p in a["processes"] if p["pid"] == K3S]
    assert k3s["spawned_by_component"] is None  # its fork is not in the trace
    (child,) = [w for w in a["waits"] if w["kind"] == "child"]
    assert child["waiter_component"] == "kubelet"


def test_fsync_rows_carry_their_component() -> None:
    a = _analysis(sched=True)
    (row,) = a["blockers"]["fsync"]
    assert row["component"] == "kine" and row["components"] == {"kine": ms(20)}


def test_path_summary_by_component_uses_the_stacks() -> None:
    a = _analysis()
    names = {r["name"] for r in a["path_summary"]["by_component"]}
    assert "kube-apiserver" in names and "kubelet" in names  # the run, the poll's waiter
    total = sum(r["total_ns"] for r in a["path_summary"]["by_component"])
    assert total == a["total_ns"]


def test_stacks_section_folded_and_problems() -> None:
    a = _analysis()
    st = a["stacks"]
    assert st["cpu_samples"] == 12 + 4 + 1  # (the sha256 sample is after the end)
    folded = dict(st["folded"])
    assert folded["k3s[100];runtime.goexit;k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run"] \
        == 12
    assert folded["k3s[100];(no stack)"] == 1
    assert folded["k3s[100];(truncated);k3s+0x409999"] == 1  # an address nothing names
    text = "\n".join(st["problems"])
    assert "k3s[100]: 2 of 17 on-CPU stacks stop after their first frame" in text
    assert "0xe9b5" not in text  # the walk's garbage is cut, not reported as unnamed code
    assert "-14 EFAULT" in text
    (lane,) = st["lanes"]["lanes"]
    assert lane["pid"] == K3S and lane["component"][0] == "kube-apiserver"


def test_bad_input_is_a_line_not_a_traceback() -> None:
    bad = [dict(binary=BIN, path="/usr/bin/k3s", symbolizer="none",
                problem="no .gopclntab section and no Go pclntab magic")]
    a = _analysis(binaries=bad, symbols=False)
    text = "\n".join(a["stacks"]["problems"])
    assert "binary /usr/bin/k3s: no .gopclntab" in text
    assert "k3s: 16 of 16 frames (of the distinct stacks) unnamed (no .gopclntab" in text
    assert _poll(a)["waiter_component"] == "k3s"  # no names: the process's own
    a = _analysis(symbols=False)
    assert any("unnamed (no symbol at this address)" in p
               for p in a["stacks"]["problems"])
    # a trace from another machine whose binary is not here (nor its extract): a line
    gone = [dict(binary=BIN, path="/nonexistent/k3s")]
    a = _analysis(binaries=gone, symbols=False)
    assert any("unnamed" in p for p in a["stacks"]["problems"])
    assert a["critical_path"] and a["waits"]  # nothing else lost
    # a binary replaced after recording, without an extract: the file at the path is another
    # binary now (its identity differs from the trace's key): a line, not wrong names
    rows = _rows(symbols=False, binaries=[dict(binary=BIN, path="/usr/bin/true")])
    rows["mappings"] = [dict(r, path="/usr/bin/true") for r in rows["mappings"]]
    a = analyze_json(trace(meta=META, **rows), profile="k3s", end="exit:iptables")
    assert any("unnamed (replaced since recording: /usr/bin/true is now" in p
               for p in a["stacks"]["problems"])
    assert _poll(a)["waiter_component"] == "k3s" and a["critical_path"]
    arm = [dict(binary=BIN, path="/usr/bin/k3s", symbolizer="gopclntab", arch="arm")]
    a = _analysis(binaries=arm)
    assert any("32-bit" in p for p in a["stacks"]["problems"])


def test_samples_without_stacks_table_or_mappings() -> None:
    rows = _rows()
    del rows["stacks"], rows["mappings"]
    a = analyze_json(trace(meta=META, **rows), profile="k3s", end="exit:iptables")
    text = "\n".join(a["stacks"]["problems"])
    assert "missing from the stacks table" in text
    assert schema.SCHEMA_VERSION == "1.4"


def test_the_text_names_components_on_the_path() -> None:
    from tracer.analyzer import analyze
    from tracer.report.text import render

    a = analyze(trace(meta=META, **_rows(sched=True)), profile="k3s", end="exit:iptables")
    text = render(a)
    assert "kubelet polled kube-apiserver 127.0.0.1:6443 every 100.0 ms" in text
    assert ("k3s[100] on-CPU: kube-apiserver 100 % (mostly in "
            "k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run)") in text
    assert "fsync   k3s[100]: 1 fsync, 20.0 ms in total, longest 20.0 ms (kine 20.0 ms)" in text
    assert "note: k3s[100]: 2 of 17 on-CPU stacks stop after their first frame" in text
    assert "(kubelet -> kube-apiserver)" in text


def test_a_stack_cut_by_a_frame_pointer_used_for_data_is_truncated(tmp_path: Any) -> None:
    from tests.unit.test_analyzer_cli import write_trace
    from tracer.analyzer import folded_stacks

    d = write_trace(tmp_path / "t", trace(meta=META, **_rows()))
    got = dict(folded_stacks(d))
    assert got["k3s[100];(truncated);crypto/sha256.block"] == 1


def test_connects_made_on_net_http_s_dialer_goroutine_are_said_plainly() -> None:
    dialer = 0x40A000
    FUNCS_DIAL = {**FUNCS, dialer: "net/http.(*Transport).dialConnFor"}
    rows = _rows()
    rows["stacks"] = [dict(stack_id=k, frames=v if k != 1 else [DIAL, dialer, GOEXIT])
                      for k, v in STACKS.items()]
    rows["symbols"] = [dict(binary=BIN, address=a - d, depth=0, function=f)
                       for a, f in FUNCS_DIAL.items() for d in (0, 1)]
    a = analyze_json(trace(meta=META, **rows), profile="k3s", end="exit:iptables")
    assert _poll(a)["waiter_component"] == "k3s"
    assert any("net/http's dialer goroutine" in p and "127.0.0.1:6443" in p
               for p in a["stacks"]["problems"])


def test_in_tree_scope_the_components_follow_the_remapped_evidence() -> None:
    rows = _rows()
    # another process's connect first: the scoped socket table's rows differ from the trace's
    rows["process"][:0] = [dict(ts_ns=0, kind="fork", pid=999, tid=999, ppid=1, comm="other"),
                           dict(ts_ns=0, kind="fork", pid=K3S, tid=K3S, ppid=1, comm="sh")]
    rows["socket"].insert(0, dict(ts_ns=1, kind="connect", pid=999, tid=999, family="inet",
                                  addr="127.0.0.1", port=1, endpoint="127.0.0.1:1", tcp=True,
                                  outcome="refused"))
    a = analyze_json(trace(meta={**META, "command_pid": K3S}, **rows), profile="k3s",
                     end="exit:iptables")
    assert a["scope"]["mode"] == "tree"
    got = {(w["kind"], w["waiter_component"], w["target_component"]) for w in a["waits"]}
    assert got == {("poll", "kubelet", "kube-apiserver"),
                   ("listener", "kube-scheduler", "kube-apiserver"), ("child", "kubelet", None)}


def test_the_text_of_the_json_read_back_is_the_same() -> None:
    import json

    from tracer.analyzer import Analysis, analyze
    from tracer.report.text import render

    a = analyze(trace(meta=META, **_rows(sched=True)), profile="k3s", end="exit:iptables")
    back = Analysis.from_json(json.loads(json.dumps(a.to_json())))
    assert render(back) == render(a)


def test_samples_before_the_exec_are_not_named_by_the_new_program() -> None:
    # iptables' pid ran k3s's program from its fork (600 ms) to its exec (601 ms); its
    # mappings were read after the exec (iptables' own). Two samples fell in between, at PCs
    # that lie inside iptables' mapping: naming them there would invent iptables functions
    rows = _rows()
    ipt_bin = "elf:iptables"
    rows["mappings"].append(dict(ts_ns=ms(602), pid=IPT, start=0x400000, end=0x800000,
                                 file_offset=0x400000, path="/usr/sbin/iptables",
                                 binary=ipt_bin))
    rows["binaries"].append(dict(binary=ipt_bin, path="/usr/sbin/iptables", symbolizer="elf",
                                 arch="x86_64"))
    rows["symbols"] += [dict(binary=ipt_bin, address=a - d, depth=0, function="iptables_fn")
                        for a in FUNCS for d in (0, 1)]
    for t in (600.2, 600.6):
        rows["samples"].append(dict(ts_ns=ms(t), kind="cpu", pid=IPT, tid=IPT, cpu=1,
                                    stack_id=4))
    rows["samples"].append(dict(ts_ns=ms(650), kind="cpu", pid=IPT, tid=IPT, cpu=1,
                                stack_id=2))  # after the exec: iptables' own, named there
    a = analyze_json(trace(meta=META, **rows), profile="k3s", end="exit:iptables")
    folded = dict(a["stacks"]["folded"])
    assert folded["iptables[200];(before exec)"] == 2, folded
    assert folded["iptables[200];iptables_fn;iptables_fn"] == 1, folded
    assert not any("iptables_fn" in k and v == 2 for k, v in folded.items())
    assert any("2 samples were taken before their process's exec" in p
               for p in a["stacks"]["problems"]), a["stacks"]["problems"]


def test_a_connect_whose_stack_was_lost_stays_in_its_poll() -> None:
    # the stack map's bucket held another stack (-17 EEXIST) at the kubelet's 4th attempt:
    # that connect has no component of its own, and must not split the poll series in two
    rows = _rows()
    lost = next(r for r in rows["samples"] if r["kind"] == "connect" and r["tid"] == 103
                and r["ts_ns"] == ms(300))
    lost["stack_id"], lost["stack_error"] = None, -17
    a = analyze_json(trace(meta=META, **rows), profile="k3s", end="exit:iptables")
    w = _poll(a)
    assert w["attempts"] == 6 and w["interval_ns"] == ms(100), w
    assert w["waiter_component"] == "kubelet"
