"""The bulk ring reader against a file laid out as the kernel lays out a BPF ring buffer
(consumer page, producer page, data area): the producer side is written here the way
kernel/bpf/ringbuf.c writes it (8-byte header: length, BUSY/DISCARD bits; record padded to 8)."""

from __future__ import annotations

import mmap
import os
import struct

from tracer.collector.ringbuf import RingReader

PAGE = mmap.PAGESIZE
SIZE = 4 * PAGE


class FakeRing:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, 2 * PAGE + SIZE)
        self.prod = 0

    def submit(self, payload: bytes, flags: int = 0) -> None:
        n = len(payload)
        rec = struct.pack("<II", n | flags, 0) + payload + b"\0" * ((-n) % 8)
        for i, b in enumerate(rec):  # byte by byte: a record may wrap the data area's end
            os.pwrite(self.fd, bytes([b]), 2 * PAGE + (self.prod + i) % SIZE)
        self.prod += len(rec)
        os.pwrite(self.fd, struct.pack("<Q", self.prod), PAGE)

    def consumer_pos(self) -> int:
        return int(struct.unpack("<Q", os.pread(self.fd, 8, 0))[0])


def test_records_come_out_grouped_by_size_across_the_wrap(tmp_path) -> None:
    ring = FakeRing(str(tmp_path / "ring"))
    reader = RingReader(ring.fd, SIZE)
    try:
        sent: dict[int, list[bytes]] = {}
        total = 0
        # several passes over the data area: records straddle its end more than once
        for rnd in range(30):
            batch = [bytes([rnd, k]) * (20 + 7 * (k % 3)) for k in range(40)]
            for p in batch:
                ring.submit(p)
                sent.setdefault(len(p), []).append(p)
            ring.submit(b"dropped" * 3, flags=1 << 30)  # DISCARD: skipped, space reclaimed
            got = reader.consume()
            for n, raw in got.items():
                want = sent.pop(n)
                assert raw == b"".join(want)
            assert not sent
            total += len(batch)
            assert ring.consumer_pos() == ring.prod
        assert ring.prod > 2 * SIZE  # the test really wrapped
        assert reader.records == total
    finally:
        reader.close()
        os.close(ring.fd)


def test_a_busy_record_stops_the_consume_until_it_is_submitted(tmp_path) -> None:
    ring = FakeRing(str(tmp_path / "ring"))
    reader = RingReader(ring.fd, SIZE)
    try:
        ring.submit(b"a" * 16)
        before = ring.prod
        ring.submit(b"b" * 16, flags=1 << 31)  # reserved, not yet submitted
        assert reader.consume() == {16: b"a" * 16}
        assert ring.consumer_pos() == before
    finally:
        reader.close()
        os.close(ring.fd)


def test_runs_of_one_record_kind_with_discards_and_a_busy_record_inside(tmp_path) -> None:
    """The reader walks runs of equal headers with one strided compare: a run broken by a
    record of another size, by a DISCARD of the same size, or by a BUSY one ends exactly there."""
    ring = FakeRing(str(tmp_path / "ring"))
    reader = RingReader(ring.fd, SIZE)
    try:
        sent: dict[int, list[bytes]] = {}
        # run lengths that cross the reader's probe steps (2, 16, 64, ...)
        plan = [(24, 1), (24, 3), (40, 2), (24, 17), (24, 0), (24, 70), (8, 1), (40, 1), (24, 2)]
        seq = 0
        for size, count in plan:
            if count == 0:  # a discarded record of the run's own size splits the run
                ring.submit(b"x" * size, flags=1 << 30)
                continue
            for _ in range(count):
                p = (seq % 251).to_bytes(1, "little") * size
                seq += 1
                ring.submit(p)
                sent.setdefault(size, []).append(p)
        got = reader.consume()
        assert got == {n: b"".join(ps) for n, ps in sent.items()}
        assert reader.records == sum(len(ps) for ps in sent.values())
        # a BUSY record inside a run of its size: the consume stops right before it
        for _ in range(5):
            ring.submit(b"r" * 24)
        before = ring.prod
        ring.submit(b"r" * 24, flags=1 << 31)
        assert reader.consume() == {24: b"r" * 24 * 5}
        assert ring.consumer_pos() == before
    finally:
        reader.close()
        os.close(ring.fd)


def _mapped_bytes(path: str) -> int:
    """Bytes of `path` mapped into this process (/proc/self/maps)."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == path:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                total += hi - lo
    return total


def test_only_the_two_position_pages_stay_mapped(tmp_path) -> None:
    """The kernel makes every page of a ring mapping resident at mmap time, so the reader
    keeps just the consumer and producer pages mapped; the data pages are mapped per consume
    and unmapped after it, also when the pending range wraps (two windows)."""
    path = str(tmp_path / "ring")
    ring = FakeRing(path)
    reader = RingReader(ring.fd, SIZE)
    try:
        assert _mapped_bytes(path) == 2 * PAGE
        payload = b"w" * (PAGE - 8)
        for _ in range(3):  # the third pass wraps around the end of the data area
            for _ in range(3):
                ring.submit(payload)
            assert reader.consume() == {len(payload): payload * 3}
            assert _mapped_bytes(path) == 2 * PAGE
        assert ring.prod > SIZE
    finally:
        reader.close()
        os.close(ring.fd)
    assert _mapped_bytes(path) == 0
