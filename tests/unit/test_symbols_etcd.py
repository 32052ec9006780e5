"""Real etcd, running: its goroutine stacks (return addresses from a live Go 1.19 process,
mapped by its real /proc/PID/maps) named by extract + StackNamer must match what etcd's own Go
runtime names them: the goroutine profile (/debug/pprof/goroutine, profile.proto) carries, per
address, the runtime's own function, file and line, inlined frames included."""

from __future__ import annotations

import gzip
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tracer import schema
from tracer.symbols import StackNamer, extract, identify, stack_pcs
from tracer.symbols.elf import ElfImage
from tracer.symbols.gopclntab import GoTable

ETCD = "/usr/bin/etcd"


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or bytes) of one protobuf message (wire types 0, 1, 2, 5)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _varint(buf, pos)
            yield num, v
        elif wire == 2:
            n, pos = _varint(buf, pos)
            yield num, buf[pos : pos + n]
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, pos
        shift += 7


def _packed(v: int | bytes) -> list[int]:
    if isinstance(v, int):
        return [v]
    out, pos = [], 0
    while pos < len(v):
        x, pos = _varint(v, pos)
        out.append(x)
    return out


def _goroutine_stacks(raw: bytes) -> tuple[list[list[int]], dict[int, list[tuple[str, str, int]]]]:
    """(stacks as lists of addresses innermost first, address -> the runtime's frames
    innermost first) from a profile.proto."""
    strings: list[str] = []
    funcs: dict[int, tuple[int, int]] = {}
    locs: dict[int, tuple[int, list[tuple[int, int]]]] = {}
    samples: list[list[int]] = []
    for num, v in _fields(raw):
        if num == 6:  # string_table
            assert isinstance(v, bytes)
            strings.append(v.decode())
        elif num == 5:  # function: id 1, name 2, filename 4
            f = dict(_fields(v)) if isinstance(v, bytes) else {}
            funcs[int(f.get(1, 0))] = (int(f.get(2, 0)), int(f.get(4, 0)))  # type: ignore[arg-type]
        elif num == 4:  # location: id 1, address 3, line 4 (function_id 1, line 2)
            assert isinstance(v, bytes)
            lid = addr = 0
            lines: list[tuple[int, int]] = []
            for n2, v2 in _fields(v):
                if n2 == 1:
                    lid = int(v2)  # type: ignore[arg-type]
                elif n2 == 3:
                    addr = int(v2)  # type: ignore[arg-type]
                elif n2 == 4:
                    ln = dict(_fields(v2)) if isinstance(v2, bytes) else {}
                    lines.append((int(ln.get(1, 0)), int(ln.get(2, 0))))  # type: ignore[arg-type]
            locs[lid] = (addr, lines)
        elif num == 2:  # sample: location_id 1 (packed)
            assert isinstance(v, bytes)
            ids: list[int] = []
            for n2, v2 in _fields(v):
                if n2 == 1:
                    ids += _packed(v2)
            samples.append(ids)
    named = {
        addr: [(strings[funcs[fid][0]], strings[funcs[fid][1]], line) for fid, line in lines]
        for addr, lines in locs.values()
    }
    stacks = [[locs[i][0] for i in ids] for ids in samples]
    return stacks, named


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_live_etcd_goroutines_named_like_its_runtime(tmp_path: Path) -> None:
    client, peer = _free_port(), _free_port()
    cmd = [
        ETCD, "--data-dir", str(tmp_path / "data"), "--enable-pprof",
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer}",
    ]  # fmt: skip
    with open(tmp_path / "etcd.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        raw = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not raw:
            try:
                url = f"http://127.0.0.1:{client}/debug/pprof/goroutine"
                with urllib.request.urlopen(url, timeout=2) as r:
                    raw = gzip.decompress(r.read())
            except OSError:
                time.sleep(0.2)
        assert raw, (tmp_path / "etcd.log").read_text()[-2000:]
        key = identify(ETCD).binary
        maps = []
        for line in Path(f"/proc/{proc.pid}/maps").read_text().splitlines():
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5] == ETCD:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                maps.append(dict(ts_ns=1, pid=proc.pid, start=lo, end=hi,
                                 file_offset=int(parts[2], 16), path=ETCD, binary=key))  # fmt: skip
        pid = proc.pid
    finally:
        proc.kill()
        proc.wait()
    stacks_list, runtime_named = _goroutine_stacks(raw)
    stacks_list = [s for s in stacks_list if s]  # a goroutine with no frames to show
    assert len(stacks_list) >= 20  # etcd runs dozens of goroutines
    # Every address in a goroutine stack is a return address, which the runtime looks up at
    # PC - 1, except a function's entry (a goroutine that has not run yet sits there);
    # our stack_pcs takes frame 0 as an interrupted PC, so frame 0 is given as the runtime
    # looks it up. (The entries are the ones checked against addr2line and .dynsym.)
    with ElfImage(ETCD) as img:
        entries = set(GoTable.from_elf(img).entries.tolist())
    frames_col = [[s[0] - (s[0] not in entries), *s[1:]] for s in stacks_list]
    stacks = pa.table(
        {"stack_id": pa.array(range(len(frames_col)), pa.int64()),
         "frames": pa.array(frames_col, pa.list_(pa.uint64()))}
    )  # fmt: skip
    samples = pa.table(
        {"pid": pa.array([pid] * len(frames_col), pa.int32()),
         "stack_id": pa.array(range(len(frames_col)), pa.int64())}
    )  # fmt: skip
    mappings = pa.Table.from_pylist(maps, schema=schema.MAPPINGS)
    binaries, symbols = extract(mappings, stack_pcs(stacks, samples))
    assert binaries.to_pylist()[0]["symbolizer"] == "gopclntab"
    namer = StackNamer(
        {"stacks": stacks, "mappings": mappings, "binaries": binaries, "symbols": symbols},
        open_binaries=False,
    )
    total = agree = inlined = elided = 0
    for sid, stack in enumerate(stacks_list):
        ours = [(f.function, f.file, f.line) for f in namer.frames(pid, sid)]
        theirs = [fr for addr in stack for fr in runtime_named[addr]]
        # Go's tracebacks leave out autogenerated wrapper functions ("(*T).M" calling T.M,
        # file "<autogenerated>"); a frame walk, and so our stack, has them: set them aside.
        wrappers = [f for f in ours if f[1] == "<autogenerated>" and f not in theirs]
        elided += len(wrappers)
        total += 1
        agree += [f for f in ours if f not in wrappers] == theirs
        inlined += len(theirs) > len(stack)
    assert agree / total >= 0.999, (agree, total)
    assert inlined > 0  # the runtime's stacks include inlined frames, and ours matched them
    assert elided < total
