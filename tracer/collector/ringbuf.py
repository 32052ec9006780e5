"""Read a BPF ring buffer in bulk through its mmapped pages, with no per-record callback.

BCC's `ring_buffer_consume` calls a Python function per record through ctypes (about 2-3 us
each, the collector's largest cost once decoding went column-wise). The ring buffer's memory
is mappable by anyone holding its map fd (kernel/bpf/ringbuf.c, the same layout libbpf's
ring_buffer__consume reads):

  offset 0          one page, read-write: consumer_pos (u64), advanced by the reader;
  offset PAGE       one page, read-only: producer_pos (u64), advanced by the kernel;
  offset 2*PAGE     the data area, SIZE bytes, which the kernel lets a reader map TWICE in a
                    row so that a record wrapping around the end is contiguous. This reader
                    maps it once: it copies the pending range out anyway, in two slices when
                    the range wraps, and the second mapping would count the ring's size again
                    in the recorder's RSS (16 MiB by default).

Each record is an 8-byte header (u32 len with BUSY bit 31 = reserved but not yet submitted,
DISCARD bit 30 = dropped by the program; u32 page offset) followed by len bytes, padded to
8. A consume copies [consumer_pos, producer_pos) in one slice, walks the headers (the only
per-record Python: two int reads), stops at the first BUSY record, gathers the records of each
size into one bytes object with numpy, and then advances consumer_pos. The kernel frees the
space only when consumer_pos moves, so nothing is read while it could still be overwritten.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8
_U32 = struct.Struct("<I")


class RingReader:
    """Bulk consumer of one BPF_MAP_TYPE_RINGBUF given its fd and data size in bytes."""

    def __init__(self, map_fd: int, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size must be a power of two, got {size}")
        self.size = size
        self.mask = size - 1
        page = mmap.PAGESIZE
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=page)
        self._data_off = page
        # The positions are read and written as ONE aligned 8-byte access each (numpy element
        # load/store), like libbpf's smp_load_acquire/smp_store_release. Not struct's "<Q":
        # its standard-size packers move the value a byte at a time, so the kernel could read
        # a torn consumer_pos mid-write; at each 16 MB carry (every ring wrap) the torn value is
        # up to a ring size behind, the ring looks full and a reservation fails (measured:
        # 1-5 lost per run at 50-100k/s with the ring never over 11% full).
        self._cons_pos = np.frombuffer(self._cons, np.uint64, 1, 0)
        self._prod_pos = np.frombuffer(self._prod, np.uint64, 1, 0)
        self.records = 0

    def close(self) -> None:
        del self._cons_pos, self._prod_pos  # exported buffers would keep the mmaps open
        self._cons.close()
        self._prod.close()

    def consume(self) -> dict[int, bytes]:
        """Every submitted record since the last call: record size -> their bytes, joined.

        Records come out grouped by size, each group in ring (submit) order."""
        cons = int(self._cons_pos[0])
        prod = int(self._prod_pos[0])
        if prod == cons:
            return {}
        start = self._data_off + (cons & self.mask)
        stop = start + (prod - cons)
        data_end = self._data_off + self.size
        if stop <= data_end:
            raw = self._prod[start:stop]  # one copy of everything pending
        else:  # the pending range wraps around the end of the (singly mapped) data area
            raw = self._prod[start:data_end] + self._prod[self._data_off : stop - self.size]
        offs: dict[int, list[int]] = {}
        pos, end = 0, len(raw)
        unpack = _U32.unpack_from
        while pos < end:
            hlen = unpack(raw, pos)[0]
            if hlen & _BUSY:  # reserved, not yet submitted: everything after waits too
                break
            n = hlen & ~(_BUSY | _DISCARD)
            if not hlen & _DISCARD:
                lst = offs.get(n)
                if lst is None:
                    offs[n] = lst = []
                lst.append(pos + _HDR)
            pos += (n + _HDR + 7) & ~7
        out: dict[int, bytes] = {}
        if offs:
            buf = np.frombuffer(raw, np.uint8)
            for n, starts in offs.items():
                if len(starts) == 1:
                    out[n] = raw[starts[0] : starts[0] + n]
                elif n > 512:  # few big records (exec argv): slicing beats an index grid
                    out[n] = b"".join([raw[s : s + n] for s in starts])
                else:
                    idx = np.asarray(starts, np.int64)
                    out[n] = buf[idx[:, None] + np.arange(n)].tobytes()
                self.records += len(starts)
        # only now may the kernel reuse the space
        self._cons_pos[0] = cons + pos
        return out
