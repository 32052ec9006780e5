"""tracer/collector/btf.py: a hand-built BTF blob with the shapes the kernel's has (an
anonymous union inside a struct, a typedef'd function pointer for a raw tracepoint), and
the running kernel's own BTF where it is readable."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tracer._errors import ProbeError
from tracer.collector import btf


def _blob() -> bytes:
    strings = b"\0int\0task_struct\0pid\0tgid\0state\0btf_trace_ev\0_Bool\0"

    def s(name: str) -> int:
        return strings.index(b"\0" + name.encode() + b"\0") + 1

    types = b""
    # 1: int (4 bytes)
    types += struct.pack("<III", s("int"), 1 << 24, 4) + struct.pack("<I", 32)
    # 2: anonymous union { int pid; int tgid; }, both at 0 (only to nest)
    types += struct.pack("<III", 0, (5 << 24) | 2, 4)
    types += struct.pack("<III", s("pid"), 1, 0) + struct.pack("<III", s("tgid"), 1, 0)
    # 3: struct task_struct { int state; <anon union at byte 8> }
    types += struct.pack("<III", s("task_struct"), (4 << 24) | 2, 16)
    types += struct.pack("<III", s("state"), 1, 0) + struct.pack("<III", 0, 2, 64)
    # 4: struct task_struct *
    types += struct.pack("<III", 0, 2 << 24, 3)
    # 5: _Bool; 6: void *
    types += struct.pack("<III", s("_Bool"), 1 << 24, 1) + struct.pack("<I", 8)
    types += struct.pack("<III", 0, 2 << 24, 0)
    # 7: func proto (void *ctx, _Bool, struct task_struct *) -> void
    types += struct.pack("<III", 0, (13 << 24) | 3, 0)
    types += struct.pack("<II", 0, 6) + struct.pack("<II", 0, 5) + struct.pack("<II", 0, 4)
    # 8: pointer to it; 9: typedef btf_trace_ev
    types += struct.pack("<III", 0, 2 << 24, 7)
    types += struct.pack("<III", s("btf_trace_ev"), 8 << 24, 8)
    hdr = struct.pack("<HBBIIIII", btf.MAGIC, 1, 0, 24, 0, len(types), len(types),
                      len(strings))
    return hdr + types + strings


def test_member_offsets_add_up_through_anonymous_members() -> None:
    b = btf.BTF(_blob())
    assert b.member_offset("task_struct", "state") == 0
    assert b.member_offset("task_struct", "pid") == 8
    assert b.member_offset("task_struct", "tgid") == 8
    with pytest.raises(btf.BTFError):
        b.member_offset("task_struct", "comm")
    with pytest.raises(btf.BTFError):
        b.member_offset("mm_struct", "pid")


def test_raw_tracepoint_params_skip_the_context() -> None:
    b = btf.BTF(_blob())
    assert b.raw_tracepoint_params("ev") == ["_Bool", "struct task_struct *"]
    with pytest.raises(btf.BTFError):
        b.raw_tracepoint_params("other")


def test_not_btf_is_an_error() -> None:
    with pytest.raises(btf.BTFError):
        btf.BTF(b"\0" * 64)


def test_the_running_kernels_task_struct() -> None:
    """pid and tgid are adjacent pid_t fields in every kernel's task_struct; the raw
    sched tracepoints take the arguments bpf/sched.bpf.c is written for (5.18+)."""
    from tracer.collector.probes import RAW_SCHED_PARAMS

    b = btf.load()
    pid = b.member_offset("task_struct", "pid")
    assert pid > 0 and b.member_offset("task_struct", "tgid") == pid + 4
    for event, params in RAW_SCHED_PARAMS.items():
        assert tuple(b.raw_tracepoint_params(event))[:len(params)] == params


def test_doctor_says_which_sched_hooks_this_kernel_gets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN this kernel (BTF, raw tracepoints: docs/platform.md) WHEN doctor runs its checks
    THEN 'sched hooks' names the raw path and the task_struct.pid offset from the BTF; and
    with the tracepoint path forced, no raw cflags are built."""
    from tracer.collector import bpfcache, doctor, probes

    monkeypatch.setattr(bpfcache, "CACHE_DIR", tmp_path / "cache")
    (check,) = [c for c in doctor.run_checks(compile_probe=False) if c.name == "sched hooks"]
    off = btf.load().member_offset("task_struct", "pid")
    assert check.ok and check.detail.startswith("raw_tracepoint: "), check
    assert f"task_struct.pid at byte {off}" in check.detail
    raw = probes.choose_sched_hooks("auto")
    b = btf.load()
    exec_off = b.member_offset("task_struct", "se") + \
        b.member_offset("sched_entity", "sum_exec_runtime")
    assert raw.cflags() == ["-DSCHED_RAW_TP", f"-DTASK_PID_OFF={off}",
                            f"-DTASK_EXEC_OFF={exec_off}"]
    # the steal split reads only current's sum: the tracepoint path gets it too
    assert probes.choose_sched_hooks("tracepoint").cflags() == [f"-DTASK_EXEC_OFF={exec_off}"]
    with pytest.raises(ProbeError):
        probes.choose_sched_hooks("fentry")


def test_sched_hooks_walk_the_btf_once_and_keep_a_note(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN an empty cache WHEN the sched hooks are chosen THEN the kernel's BTF is walked
    once for both offsets (pid, se.sum_exec_runtime); a second choice reads the note and
    walks nothing; and a kernel without BTF falls back to tracepoints ('raw' refuses)."""
    from tracer.collector import bpfcache, probes

    monkeypatch.setattr(bpfcache, "CACHE_DIR", tmp_path / "cache")
    walks = []
    real_load = btf.load

    def counting_load(path: Path = btf.VMLINUX) -> btf.BTF:
        walks.append(path)
        return real_load(path)

    monkeypatch.setattr(btf, "load", counting_load)
    first = probes.choose_sched_hooks("auto")
    assert len(walks) == 1
    assert probes.choose_sched_hooks("auto") == first and len(walks) == 1
    assert first.task_pid_offset == real_load().member_offset("task_struct", "pid")

    monkeypatch.setattr(btf, "VMLINUX", tmp_path / "no-such-btf")
    fallback = probes.choose_sched_hooks("auto")
    assert fallback.path == "tracepoint" and "no kernel BTF" in fallback.why
    assert fallback.task_exec_offset is None
    with pytest.raises(ProbeError, match="no kernel BTF"):
        probes.choose_sched_hooks("raw")
