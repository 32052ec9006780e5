"""The symbol extract and the stack namer on a LIVE Go process: a position-independent build
of the fixture (loaded at a random base) prints the runtime's own stack, raw PCs and what
runtime.CallersFrames names them (inlined frames expanded); the test reads the process's real
/proc/PID/maps as MAPPINGS rows and checks that extract + StackNamer name those PCs exactly as
the Go runtime does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from tests.unit.symbols_fixture import Built, build_fixture
from tracer import schema
from tracer.symbols import StackNamer, extract, identify, stack_pcs


def _maps_rows(pid: int, binary: Path, key: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[5] != str(binary) or "x" not in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        rows.append(
            dict(ts_ns=1, pid=pid, start=start, end=end, file_offset=int(parts[2], 16),
                 path=str(binary), binary=key)
        )  # fmt: skip
    return rows


def _physical(pcs: list[int]) -> list[int]:
    """The stack a frame-pointer walk sees, from runtime.Callers' PCs.

    runtime.Callers gives one PC per frame: for the inlined pkgb.Here it gives the return
    address in main.report (pcs[1]) and, for main.report itself, an extra "inline mark" PC
    just before it in the same function (pcs[2]); a frame walk has no such PC, so it is
    dropped. And every Callers PC is a return address, while a sampled stack's frame 0 is the
    interrupted PC itself: frame 0 is given as its call instruction (PC - 1), where the Go
    runtime looks it up too."""
    assert 0 < pcs[1] - pcs[2] < 32, [hex(p) for p in pcs]
    return [pcs[0] - 1, pcs[1], *pcs[3:]]


@pytest.fixture(scope="module", params=["1.19", "1.27"])
def pie(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_fixture(request.param, tmp_path_factory.mktemp("pie"), pie=True)


def _run_stacks(
    b: Built,
) -> tuple[int, list[int], list[tuple[str, str, int]], list[dict[str, object]]]:
    proc = subprocess.Popen([str(b.binary), "stacks"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pcs: list[int] = []
        frames: list[tuple[str, str, int]] = []
        for line in proc.stdout:
            if line.startswith("pc "):
                pcs.append(int(line.split()[1], 16))
            elif line.startswith("frame "):
                fn, file, ln = line[6:].rstrip("\n").split("|")
                frames.append((fn, file, int(ln)))
            elif line.strip() == "ready":
                break
        maps = _maps_rows(proc.pid, b.binary, identify(str(b.binary)).binary)
        return proc.pid, pcs, frames, maps
    finally:
        proc.kill()
        proc.wait()


def test_live_process_stack_named_like_the_go_runtime(pie: Built) -> None:
    pid, pcs, runtime_frames, maps = _run_stacks(pie)
    assert maps and pcs and runtime_frames
    # Position independent: loaded away from its link address, so pc != ELF address.
    assert all(int(m["start"]) > 0x10000000 for m in maps)  # type: ignore[call-overload]
    frames = _physical(pcs)
    stacks = pa.table(
        {"stack_id": pa.array([7], pa.int64()), "frames": pa.array([frames], pa.list_(pa.uint64()))}
    )
    samples = pa.table({"pid": pa.array([pid], pa.int32()), "stack_id": pa.array([7], pa.int64())})
    mappings = pa.Table.from_pylist(maps, schema=schema.MAPPINGS)
    binaries, symbols = extract(mappings, stack_pcs(stacks, samples))
    assert binaries.schema == schema.BINARIES and symbols.schema == schema.SYMBOLS
    (row,) = binaries.to_pylist()
    assert row["symbolizer"] == "gopclntab" and row["problem"] is None
    assert row["go_version"].startswith(f"go{pie.version}")
    namer = StackNamer(
        {"stacks": stacks, "samples": samples, "mappings": mappings, "binaries": binaries,
         "symbols": symbols}, open_binaries=False,
    )  # fmt: skip
    ours = [(f.function, f.file, f.line) for f in namer.frames(pid, 7)]
    assert ours == runtime_frames
    # an inlined frame is among them, named for its own package
    assert runtime_frames[0][0] == "example.com/fixture/pkgb.Where"
    assert runtime_frames[1][0] == "example.com/fixture/pkgb.Here"
    assert runtime_frames[2][0] == "main.report"
    assert "pkgb.Here" in pie.inlined_at[("main.go", runtime_frames[2][2])]


def test_namer_opens_the_binary_when_the_trace_has_no_extract(pie: Built) -> None:
    pid, pcs, runtime_frames, maps = _run_stacks(pie)
    frames = _physical(pcs)
    stacks = pa.table(
        {"stack_id": pa.array([1], pa.int64()), "frames": pa.array([frames], pa.list_(pa.uint64()))}
    )
    namer = StackNamer(
        {"stacks": stacks, "mappings": pa.Table.from_pylist(maps, schema=schema.MAPPINGS)}
    )
    ours = [(f.function, f.file, f.line) for f in namer.frames(pid, 1)]
    namer.close()
    assert ours == runtime_frames
