"""Decoding raw ring-buffer records: the numpy layouts against the C compiler's, grouping by
size, sockaddr text, and the pairing of events into rows (exec, connect outcomes, listens).

Records are built with struct.pack following bpf/events.h, independently of the numpy
dtypes under test (this kernel has no module tracepoints, so module records can only be
tested this way)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tracer.collector import decode as d
from tracer.collector.assemble import Assembler, decode_sockaddr

BPF = Path(__file__).resolve().parents[2] / "bpf"
STRUCTS = {
    "fork_event": d.FORK, "exec_enter_event": d.exec_enter_dtype(), "exec_event": d.EXEC,
    "exec_fail_event": d.EXEC_FAIL, "exit_event": d.EXIT, "sockop_event": d.SOCKOP,
    "sk_result_event": d.SK_RESULT, "module_event": d.MODULE, "cgroup_event": d.CGROUP,
    "stack_sample": d.STACK_SAMPLE,
}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to lay out events.h")
def test_numpy_layouts_match_the_c_compiler(tmp_path: Path) -> None:
    # GIVEN events.h compiled by a real C compiler, printing every field's offset and size
    lines = []
    for name, dt in STRUCTS.items():
        lines.append(f'printf("{name} sizeof %zu\\n", sizeof(struct {name}));')
        for field in dt.names:
            if field.startswith("_"):
                continue
            has_hdr = dt.names[:len(d.HDR.names)] == d.HDR.names
            c_field = f"hdr.{field}" if has_hdr and field in d.HDR.names else field
            lines.append(f'printf("{name} {field} %zu %zu\\n", '
                         f"offsetof(struct {name}, {c_field}), "
                         f"sizeof(((struct {name} *)0)->{c_field}));")
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n"
        "typedef uint64_t u64; typedef uint32_t u32; typedef uint16_t u16; typedef uint8_t u8;\n"
        "typedef int64_t s64; typedef int32_t s32;\n"
        f'#include "{BPF / "events.h"}"\nint main(void) {{\n' + "\n".join(lines) + "\nreturn 0;}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    # THEN the Python dtypes agree field by field
    for line in out.splitlines():
        name, field, *nums = line.split()
        dt = STRUCTS[name]
        if field == "sizeof":
            assert dt.itemsize == int(nums[0]) == d.C_SIZES[name], name
            continue
        off, size = int(nums[0]), int(nums[1])
        sub, dt_off = dt.fields[field][:2]
        assert (dt_off, sub.itemsize) == (off, size), f"{name}.{field}"


def hdr(t: int, ts: int, pid: int = 100, tid: int | None = None, comm: bytes = b"x") -> bytes:
    return struct.pack("<QQIIII16s", ts, 7, t, pid, pid if tid is None else tid, 0, comm)


def exec_enter(ts: int, tid: int, filename: bytes, argv: list[bytes], pid: int = 100) -> bytes:
    body = struct.pack("<II256s", len(argv), 0, filename)
    args = b"".join(struct.pack("256s", a) for a in argv) + b"\0" * 256 * (20 - len(argv))
    return hdr(d.EV_EXEC_ENTER, ts, pid, tid) + body + args


def exec_done(ts: int, pid: int, old_tid: int, filename: bytes, comm: bytes) -> bytes:
    return hdr(d.EV_EXEC, ts, pid, pid, comm) + struct.pack("<II256s", old_tid, 0, filename)


def exec_fail(ts: int, tid: int, ret: int) -> bytes:
    return hdr(d.EV_EXEC_FAIL, ts, 100, tid) + struct.pack("<q", ret)


def sockop(t: int, ts: int, enter: int, ret: int, sa: bytes, sk: int = 0, fd: int = 3,
           pid: int = 100, answer: tuple[int, int, int] | None = None,
           sport: int = 40000) -> bytes:
    """answer = (result_ns, newstate, error): a TCP answer the kernel folded into the record."""
    result_ns, newstate, error = answer or (0, 0, 0)
    return hdr(t, ts, pid) + struct.pack("<QQqiI112s", enter, sk, ret, fd, len(sa), sa) + \
        struct.pack("<QiiHHHH16s", result_ns, newstate, error, sport if answer else 0,
                    6443 if answer else 0, socket.AF_INET if answer else 0, 0,
                    socket.inet_aton("127.0.0.1") if answer else b"") + \
        struct.pack("<iI", d.STACK_NOT_TAKEN, 0)


def sin(ip: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_aton(ip) + b"\0" * 8


def sun(path: bytes) -> bytes:
    return struct.pack("<H", socket.AF_UNIX) + path


def result(ts: int, sk: int, newstate: int, error: int, sport: int = 40000,
           dport: int = 6443) -> bytes:
    return hdr(d.EV_SK_RESULT, ts, 0) + struct.pack(
        "<QiiHHHH16s", sk, newstate, error, sport, dport, socket.AF_INET, 0,
        socket.inet_aton("127.0.0.1"))


def feed(asm: Assembler, *records: bytes) -> dict[str, list[dict]]:
    by_size: dict[int, list[bytes]] = {}
    for r in records:
        by_size.setdefault(len(r), []).append(r)
    tables = asm.feed(d.split(by_size, d.dtypes()))
    return {k: v.to_pylist() for k, v in tables.items()}


def test_split_separates_types_that_share_a_size() -> None:
    fork = hdr(d.EV_FORK, 1) + struct.pack("<QII", 0, 101, 0)
    exit_ = hdr(d.EV_EXIT, 2) + struct.pack("<iiII", 3, 0, 1, 0)
    assert len(fork) == len(exit_) == 64
    typed = d.split({64: [fork, exit_, fork]}, d.dtypes())
    assert sorted((t, sum(len(a) for a in v)) for t, v in typed.items()) == [
        (d.EV_FORK, 2), (d.EV_EXIT, 1)]


def test_unknown_record_is_an_error_not_garbage() -> None:
    with pytest.raises(d.UnknownRecord):
        d.split({64: [hdr(99, 1) + b"\0" * 16]}, d.dtypes())


@pytest.mark.parametrize("raw,expect", [
    (sin("127.0.0.1", 6443), ("inet", "127.0.0.1", 6443, "127.0.0.1:6443")),
    (struct.pack("<H", socket.AF_INET6) + struct.pack(">H", 2379) + b"\0" * 4 +
     socket.inet_pton(socket.AF_INET6, "::1") + b"\0" * 4,
     ("inet6", "::1", 2379, "[::1]:2379")),
    (sun(b"/run/k3s/containerd/containerd.sock\0"),
     ("unix", "/run/k3s/containerd/containerd.sock", None,
      "unix:/run/k3s/containerd/containerd.sock")),
    (sun(b"\0abstract-name"), ("unix", "@abstract-name", None, "unix:@abstract-name")),
    (sun(b""), ("unix", "", None, "unix:")),
    (b"\x00", ("other", None, None, None)),
])
def test_decode_sockaddr(raw: bytes, expect: tuple) -> None:
    assert decode_sockaddr(raw, len(raw)) == expect


def test_exec_pairs_by_tid_in_time_order_including_path_search_and_de_thread() -> None:
    asm = Assembler()
    rows = feed(
        asm,
        # a shell searching PATH: two failures then success, all from tid 100
        exec_enter(10, 100, b"/usr/local/bin/k3s", [b"k3s", b"server"]),
        exec_fail(11, 100, -2),
        exec_enter(12, 100, b"/usr/bin/k3s", [b"k3s", b"server"]),
        exec_fail(13, 100, -13),
        exec_enter(14, 100, b"/bin/k3s", [b"k3s", b"server"]),
        # a non-leader thread (tid 205 of pid 200) execs in place: de_thread makes it 200
        exec_enter(20, 205, b"/var/lib/rancher/k3s/data/x/bin/k3s-server", [b"k3s-server"],
                   pid=200),
        exec_done(21, 200, 205, b"/var/lib/rancher/k3s/data/x/bin/k3s-server", b"k3s-server"),
    )
    # the sched_process_exec for pid 100 arrives in the NEXT batch
    later = feed(asm, exec_done(15, 100, 100, b"/bin/k3s", b"k3s"))
    got = [(r["kind"], r["pid"], r["tid"], r["filename"], r["errno"], r["argv"])
           for r in rows["process"] + later["process"]]
    assert got == [
        ("exec_failed", 100, 100, "/usr/local/bin/k3s", 2, ["k3s", "server"]),
        ("exec_failed", 100, 100, "/usr/bin/k3s", 13, ["k3s", "server"]),
        ("exec", 200, 205, "/var/lib/rancher/k3s/data/x/bin/k3s-server", None, ["k3s-server"]),
        ("exec", 100, 100, "/bin/k3s", None, ["k3s", "server"]),
    ]


def test_module_loader_execs_are_tagged() -> None:
    rows = feed(
        Assembler(),
        exec_enter(10, 100, b"/sbin/modprobe", [b"modprobe", b"--", b"br_netfilter"]),
        exec_done(11, 100, 100, b"/sbin/modprobe", b"modprobe"),
        exec_enter(12, 101, b"/usr/sbin/iptables", [b"iptables"], pid=101),
        exec_done(13, 101, 101, b"/usr/sbin/iptables", b"iptables"),
    )["process"]
    assert [(r["comm"], r["tag"]) for r in rows] == [("modprobe", "module-loader"),
                                                      ("iptables", None)]


def test_fork_thread_and_exit_rows() -> None:
    rows = feed(
        Assembler(),
        hdr(d.EV_FORK, 1, pid=100, tid=101) + struct.pack("<QII", 0x00010000, 150, 0),
        hdr(d.EV_FORK, 2, pid=100, tid=101) + struct.pack("<QII", 0x11, 160, 0),
        hdr(d.EV_EXIT, 3, pid=160) + struct.pack("<iiII", 3, 0, 1, 0),
        hdr(d.EV_EXIT, 4, pid=161) + struct.pack("<iiII", 0, 9, 2, 0),
        hdr(d.EV_EXIT, 5, pid=162) + struct.pack("<iiII", 0, 15, 3, 0),  # handled, then exit 0
    )["process"]
    got = [(r["kind"], r["pid"], r["tid"], r["ppid"], r["exit_code"], r["exit_signal"])
           for r in rows]
    assert got == [
        ("thread", 100, 150, 101, None, None),
        ("fork", 160, 160, 100, None, None),
        ("exit", 160, 160, None, 3, None),
        ("exit", 161, 161, None, None, 9),
        ("exit", 162, 162, None, 0, None),
    ]


def test_nonblocking_refused_close_then_report_and_timeout_report_then_close() -> None:
    asm = Assembler()
    ep = sin("127.0.0.1", 6443)
    # refused: syscall returns EINPROGRESS, then CLOSE, then the error report (same tuple)
    a = feed(asm, sockop(d.EV_CONNECT, 11, 10, -115, ep, sk=0xA),
             result(12, 0xA, 7, 0, sport=40001), result(12, 0, 0, 111, sport=40001))
    # timeout: report first, then CLOSE
    b = feed(asm, sockop(d.EV_CONNECT, 21, 20, -115, ep, sk=0xB),
             result(30, 0, 0, 110, sport=40002), result(30, 0xB, 7, 0, sport=40002))
    # ok, where the answer came inside the syscall (before its exit record): loopback
    c = feed(asm, result(41, 0xC, 1, 0, sport=40003), sockop(d.EV_CONNECT, 42, 40, -115, ep,
                                                            sk=0xC))
    # closed by the caller with no answer, and one still pending at stop
    e = feed(asm, sockop(d.EV_CONNECT, 51, 50, -115, ep, sk=0xD),
             result(60, 0xD, 7, 0, sport=40004), sockop(d.EV_CONNECT, 71, 70, -115, ep, sk=0xE))
    f = feed(asm)  # next flush: the provisional "closed" is final now
    g = asm.finish()
    rows = [r for batch in (a, b, c, e, f) for r in batch.get("socket", [])]
    rows += g["socket"].to_pylist()
    got = [(r["ts_ns"], r["outcome"], r["outcome_errno"], r["outcome_ns"]) for r in rows]
    assert sorted(got) == [
        (10, "refused", 111, 12),
        (20, "timeout", 110, 30),
        (40, "ok", None, 41),
        (50, "closed", None, 60),
        (70, "pending", None, None),
    ]
    assert all(r["tcp"] for r in rows)


def test_tcp_answers_folded_into_the_connect_record_by_the_kernel() -> None:
    asm = Assembler()
    ep = sin("127.0.0.1", 6443)
    a = feed(
        asm,
        # blocking connect, answered inside the syscall: ok, and refused (CLOSE + report)
        sockop(d.EV_CONNECT, 12, 10, 0, ep, sk=0xA, answer=(11, 1, 0), sport=40001),
        sockop(d.EV_CONNECT, 22, 20, -111, ep, sk=0xB, answer=(21, 7, 111), sport=40002),
        # CLOSE folded in, its error report came on another CPU: a record of its own, later
        sockop(d.EV_CONNECT, 32, 30, -115, ep, sk=0xC, answer=(31, 7, 0), sport=40003),
        result(33, 0, 0, 110, sport=40003),
        # ... or earlier (report first, then CLOSE, both while the caller was in connect())
        result(40, 0, 0, 113, sport=40004),
        sockop(d.EV_CONNECT, 42, 39, -115, ep, sk=0xD, answer=(41, 7, 0), sport=40004),
    )
    rows = a["socket"] + feed(asm)["socket"] + asm.finish().get("socket", pa.table({})).to_pylist()
    got = sorted((r["ts_ns"], r["outcome"], r["outcome_errno"], r["outcome_ns"], r["tcp"])
                 for r in rows)
    assert got == [
        (10, "ok", None, 11, True),
        (20, "refused", 111, 21, True),
        (30, "timeout", 110, 31, True),
        (39, "unreachable", 113, 41, True),
    ]


def test_accept_endpoint_is_the_listen_before_it_on_that_fd() -> None:
    # fd 9 of pid 300 listens on one path, then (closed, fd reused) on another, in ONE batch
    asm = Assembler()
    one, two = b"/run/one.sock\0", b"/run/two.sock\0"
    rows = feed(
        asm,
        sockop(d.EV_BIND, 2, 1, 0, sun(one), fd=9, pid=300),
        sockop(d.EV_LISTEN, 4, 3, 0, b"", fd=9, pid=300),
        sockop(d.EV_ACCEPT, 6, 5, 10, b"", fd=9, pid=300),
        sockop(d.EV_BIND, 8, 7, 0, sun(two), fd=9, pid=300),
        sockop(d.EV_LISTEN, 10, 9, 0, b"", fd=9, pid=300),
        sockop(d.EV_ACCEPT, 12, 11, 10, b"", fd=9, pid=300),
        sockop(d.EV_ACCEPT, 14, 13, 10, b"", fd=5, pid=300),  # fd never seen listening
    )["socket"]
    later = feed(asm, sockop(d.EV_ACCEPT, 16, 15, 11, b"", fd=9, pid=300))["socket"]
    got = [(r["kind"], r["endpoint"]) for r in rows + later if r["kind"] == "accept"]
    assert got == [("accept", "unix:/run/one.sock"), ("accept", "unix:/run/two.sock"),
                   ("accept", None), ("accept", "unix:/run/two.sock")]


def test_unix_connect_outcome_is_the_syscall_return_and_listen_path_comes_from_bind() -> None:
    path = b"/run/k3s/containerd/containerd.sock\0"
    rows = feed(
        Assembler(),
        sockop(d.EV_CONNECT, 2, 1, -2, sun(path)),
        sockop(d.EV_BIND, 4, 3, 0, sun(path), fd=9, pid=300),
        sockop(d.EV_LISTEN, 6, 5, 0, b"", fd=9, pid=300),
        sockop(d.EV_CONNECT, 8, 7, -111, sun(path)),
        sockop(d.EV_CONNECT, 10, 9, 0, sun(path)),
        sockop(d.EV_ACCEPT, 12, 11, 10, b"", fd=9, pid=300),
    )["socket"]
    got = [(r["kind"], r["endpoint"], r["outcome"]) for r in rows]
    ep = "unix:/run/k3s/containerd/containerd.sock"
    assert got == [("connect", ep, "enoent"), ("bind", ep, None), ("listen", ep, None),
                   ("connect", ep, "refused"), ("connect", ep, "ok"), ("accept", ep, None)]


def test_module_records_decode() -> None:
    def module(ts: int, kind: int, name: bytes, ret: int, enter: int) -> bytes:
        return hdr(d.EV_MODULE, ts, 2, comm=b"modprobe") + struct.pack("<QqII56s", enter, ret,
                                                                        kind, 0, name)
    rows = feed(Assembler(), module(5, 4, b"", 0, 3), module(4, 1, b"br_netfilter", 0, 0),
                module(9, 2, b"overlay", 0, 0))["module"]
    # the finit_module row is named by the module_load its task fired inside the syscall
    assert [(r["kind"], r["name"], r["ret"]) for r in rows] == [
        ("load", "br_netfilter", None), ("finit_module", "br_netfilter", 0),
        ("free", "overlay", None)]


def test_module_syscall_rows_named_only_by_a_load_inside_them() -> None:
    def module(ts: int, kind: int, name: bytes, ret: int, enter: int) -> bytes:
        return hdr(d.EV_MODULE, ts, 2, comm=b"modprobe") + struct.pack("<QqII56s", enter, ret,
                                                                        kind, 0, name)
    asm = Assembler()
    # a load whose syscall exit comes in the next batch is still paired
    first = feed(asm, module(10, 1, b"llc", 0, 0))["module"]
    later = feed(asm, module(12, 4, b"", 0, 8),
                 # already loaded: finit_module fails with EEXIST and no module_load fires
                 module(20, 4, b"", -17, 18),
                 # a load BEFORE the syscall entered names nothing
                 module(30, 1, b"stp", 0, 0), module(40, 4, b"", -1, 35))["module"]
    assert [r["name"] for r in first] == ["llc"]
    assert [(r["kind"], r["name"], r["ret"]) for r in later] == [
        ("finit_module", "llc", 0), ("finit_module", "", -17), ("load", "stp", None),
        ("finit_module", "", -1)]


def test_numpy_strings_strip_nul_padding() -> None:
    a = np.frombuffer(hdr(d.EV_FORK, 1, comm=b"k3s-server") + b"\0" * 16, dtype=d.FORK)
    assert d.cstr(bytes(a[0]["comm"])) == "k3s-server"
