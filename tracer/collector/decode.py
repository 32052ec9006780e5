"""Decode raw ring-buffer records in batches: bytes -> numpy structured arrays.

The Python mirror of bpf/events.h. The ring reader (ringbuf.py) hands over each size's records
as one bytes object (a ctypes field decode per record would cost ~10 us). Here every
group becomes ONE numpy array (zero-copy view over the joined bytes) and fields are sliced out
as columns, so the per-event Python work is a list append.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

# enum event_type
EV_FORK = 1
EV_EXEC_ENTER = 2
EV_EXEC = 3
EV_EXEC_FAIL = 4
EV_EXIT = 5
EV_CONNECT = 6
EV_BIND = 7
EV_LISTEN = 8
EV_ACCEPT = 9
EV_SK_RESULT = 10
EV_MODULE = 11
EV_CGROUP = 12
EV_STACK_SAMPLE = 13
#: a record's stack_id when no stack was taken (bpf/events.h STACK_NOT_TAKEN)
STACK_NOT_TAKEN = -(2**31)

SOCKOP_KIND = {EV_CONNECT: "connect", EV_BIND: "bind", EV_LISTEN: "listen", EV_ACCEPT: "accept"}
MODULE_KIND = {1: "load", 2: "free", 3: "init_module", 4: "finit_module"}

PATH_LEN = 256
SA_LEN = 112
MOD_NAME_LEN = 56

HDR_FIELDS: list[tuple[str, str]] = [
    ("ts_ns", "<u8"),
    ("cgroup_id", "<u8"),
    ("type", "<u4"),
    ("pid", "<u4"),
    ("tid", "<u4"),
    ("uid", "<u4"),
    ("comm", "S16"),
]
HDR = np.dtype(HDR_FIELDS)
assert HDR.itemsize == 48


def _rec(*fields: tuple[str, str | tuple[str, tuple[int, ...]]]) -> np.dtype:
    return np.dtype(HDR_FIELDS + list(fields))


def exec_enter_dtype(max_args: int = 20, arg_len: int = 256) -> np.dtype:
    return _rec(
        ("argc", "<u4"),
        ("truncated", "<u4"),
        ("filename", f"S{PATH_LEN}"),
        ("argv", (f"S{arg_len}", (max_args,))),
    )


FORK = _rec(("clone_flags", "<u8"), ("child_tid", "<u4"), ("stack_id", "<i4"))
EXEC = _rec(("old_tid", "<u4"), ("_pad", "<u4"), ("filename", f"S{PATH_LEN}"))
EXEC_FAIL = _rec(("ret", "<i8"))
EXIT = _rec(("exit_code", "<i4"), ("signal", "<i4"), ("flags", "<u4"), ("_pad", "<u4"))
SOCKOP = _rec(
    ("enter_ns", "<u8"),
    ("skaddr", "<u8"),
    ("ret", "<i8"),
    ("fd", "<i4"),
    ("addrlen", "<u4"),
    ("sa", f"V{SA_LEN}"),
    ("result_ns", "<u8"),
    ("newstate", "<i4"),
    ("error", "<i4"),
    ("sport", "<u2"),
    ("dport", "<u2"),
    ("family", "<u2"),
    ("_pad", "<u2"),
    ("daddr", "V16"),
    ("stack_id", "<i4"),
    ("_pad2", "<u4"),
)
SK_RESULT = _rec(
    ("skaddr", "<u8"),
    ("newstate", "<i4"),
    ("error", "<i4"),
    ("sport", "<u2"),
    ("dport", "<u2"),
    ("family", "<u2"),
    ("_pad", "<u2"),
    ("daddr", "V16"),
)
MODULE = _rec(
    ("enter_ns", "<u8"),
    ("ret", "<i8"),
    ("kind", "<u4"),
    ("stack_id", "<i4"),
    ("name", f"S{MOD_NAME_LEN}"),
)
CGROUP = _rec(("id", "<u8"), ("level", "<i4"), ("root", "<i4"), ("path", f"S{PATH_LEN}"))
#: struct stack_sample: not an event_hdr record (type still at offset 16)
STACK_SAMPLE = np.dtype([("ts_ns", "<u8"), ("pid", "<u4"), ("tid", "<u4"), ("type", "<u4"),
                         ("stack_id", "<i4"), ("cpu", "<u4"), ("_pad", "<u4")])

#: record sizes as the C compiler lays them out (checked by the unit tests)
C_SIZES = {
    "fork_event": 64,
    "exec_enter_event": 5432,
    "exec_event": 312,
    "exec_fail_event": 56,
    "exit_event": 64,
    "sockop_event": 240,
    "sk_result_event": 88,
    "module_event": 128,
    "cgroup_event": 320,
    "stack_sample": 32,
}


def dtypes(max_args: int = 20, arg_len: int = 256) -> dict[int, np.dtype]:
    """event type -> record dtype."""
    sockop = SOCKOP
    return {
        EV_FORK: FORK,
        EV_EXEC_ENTER: exec_enter_dtype(max_args, arg_len),
        EV_EXEC: EXEC,
        EV_EXEC_FAIL: EXEC_FAIL,
        EV_EXIT: EXIT,
        EV_CONNECT: sockop,
        EV_BIND: sockop,
        EV_LISTEN: sockop,
        EV_ACCEPT: sockop,
        EV_SK_RESULT: SK_RESULT,
        EV_MODULE: MODULE,
        EV_CGROUP: CGROUP,
        EV_STACK_SAMPLE: STACK_SAMPLE,
    }


class UnknownRecord(ValueError):
    pass


def split(
    chunks_by_size: dict[int, list[bytes]], types: dict[int, np.dtype]
) -> dict[int, list[np.ndarray]]:
    """Group raw records (bucketed by size) into typed arrays: event type -> arrays.

    Several record types may share a size; each size bucket is viewed once with the common
    header to read the type column, then each type's rows are re-viewed with its own dtype.
    """
    out: dict[int, list[np.ndarray]] = {}
    for size, chunks in chunks_by_size.items():
        if not chunks:
            continue
        buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        hdr_view = np.dtype({"names": ["type"], "formats": ["<u4"], "offsets": [16],
                             "itemsize": size})
        kinds = np.frombuffer(buf, dtype=hdr_view)["type"]
        # the distinct types (a handful, < 32): a bincount, not a sort
        if int(kinds.max()) > 255:
            raise UnknownRecord(f"record type {int(kinds.max())} with size {size}")
        present = np.flatnonzero(np.bincount(kinds))
        # several types in one size: select each type's rows on a plain (n, size) byte view
        # (a row memcpy) rather than on the structured dtype (a field-by-field copy, 2x slower)
        rows = np.frombuffer(buf, np.uint8).reshape(-1, size) if len(present) > 1 else None
        for t in present.tolist():
            dt = types.get(t)
            if dt is None or dt.itemsize != size:
                raise UnknownRecord(f"record type {t} with size {size}")
            if rows is not None:
                arr = rows[kinds == t].view(dt).reshape(-1)
            else:
                arr = np.frombuffer(buf, dtype=dt)
            out.setdefault(int(t), []).append(arr)
    return out


def concat(arrays: Iterable[np.ndarray]) -> np.ndarray:
    arrs = list(arrays)
    return arrs[0] if len(arrs) == 1 else np.concatenate(arrs)


def cstr(b: bytes) -> str:
    """A NUL-terminated C string field (numpy already strips trailing NULs)."""
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")
