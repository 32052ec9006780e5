"""The few facts about the running kernel that the raw-tracepoint sched programs need, read
from its BTF (/sys/kernel/btf/vmlinux), which describes this exact build.

Why not the headers: BCC compiles against whatever /lib/modules/$(uname -r)/build holds,
and on the machines this was built on that is Debian's 6.1 tree under a 6.18 kernel: struct
layouts from it are wrong (docs/platform.md). A raw tracepoint hands its program the tracepoint's
raw arguments (task_struct pointers), so the one field it reads behind them, task_struct.pid,
is located here and passed to the compiler as -DTASK_PID_OFF=N (which also puts it in the
bytecode cache key).

The BTF format (Documentation/bpf/btf.rst): a header, then a type section of variable-length
records (a 12-byte `struct btf_type`, then kind-specific data) numbered from 1 in file
order, and a string section. Only what is needed is decoded: struct/union members (walked
through anonymous members, whose offsets add up) and the function prototype behind a
`btf_trace_<event>` typedef (the raw tracepoint's argument list, first the program context).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MAGIC = 0xEB9F

# kinds (include/uapi/linux/btf.h)
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_FUNC_PROTO, _VAR, _DATASEC, _DECL_TAG, _ENUM64 = 13, 14, 15, 17, 19
#: bytes of kind-specific data after struct btf_type: fixed, or per vlen entry
_FIXED = {_INT: 4, _ARRAY: 12, _VAR: 4, _DECL_TAG: 4}
_PER_ENTRY = {_STRUCT: 12, _UNION: 12, _ENUM: 8, _FUNC_PROTO: 8, _DATASEC: 12, _ENUM64: 12}


class BTFError(Exception):
    """The BTF is missing, not BTF, or lacks what was asked for."""


@dataclass(frozen=True)
class _Type:
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    ref: int  # size_or_type
    data: int  # offset of the kind-specific data in the blob


class BTF:
    """Types of one BTF blob, found by name."""

    def __init__(self, blob: bytes) -> None:
        if len(blob) < 24:
            raise BTFError("too short for a BTF header")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", blob, 0)
        if magic != MAGIC:
            raise BTFError(f"bad magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", blob, 8)
        self._blob = blob
        self._strs = hdr_len + str_off
        self._str_end = self._strs + str_len
        # Walked once, lean (~125k types on a distro kernel): each type's position only, and
        # the ids of named types that are asked for by name later (find) are looked up by
        # their string offset, so no string is decoded during the walk.
        self._pos: list[int] = [0]  # id 0 is void
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.unpack_from
        fixed, per = _FIXED, _PER_ENTRY
        positions = self._pos
        while pos < end:
            positions.append(pos)
            info = unpack("<I", blob, pos + 4)[0]
            kind = (info >> 24) & 0x1F
            pos += 12 + fixed.get(kind, 0) + (info & 0xFFFF) * per.get(kind, 0)

    def _str(self, off: int) -> str:
        start = self._strs + off
        return self._blob[start:self._blob.index(b"\0", start, self._str_end)].decode()

    def type(self, tid: int) -> _Type | None:
        if tid == 0:
            return None
        pos = self._pos[tid]
        name_off, info, ref = struct.unpack_from("<III", self._blob, pos)
        return _Type((info >> 24) & 0x1F, self._str(name_off) if name_off else "",
                     info & 0xFFFF, bool(info >> 31), ref, pos + 12)

    def find(self, kind: int, name: str) -> _Type:
        """The first type of that kind and name (BTF strings are deduplicated: one offset)."""
        needle = b"\0" + name.encode() + b"\0"
        at = self._blob.find(needle, self._strs, self._str_end)
        if self._blob.startswith(needle[1:], self._strs):
            at = self._strs - 1  # the very first string
        if at >= 0:
            name_off = at + 1 - self._strs
            unpack = struct.unpack_from
            blob = self._blob
            for tid in range(1, len(self._pos)):
                no, info = unpack("<II", blob, self._pos[tid])
                if no == name_off and (info >> 24) & 0x1F == kind:
                    t = self.type(tid)
                    assert t is not None
                    return t
        raise BTFError(f"no {name} in the kernel's BTF")

    def _resolve(self, tid: int) -> _Type | None:
        """Through typedefs and qualifiers (volatile, const, restrict, type tags)."""
        t = self.type(tid)
        while t is not None and t.kind in (_TYPEDEF, 9, 10, 11, 18):
            t = self.type(t.ref)
        return t

    def member_offset(self, struct_name: str, member: str) -> int:
        """Byte offset of a member of a struct, looking inside anonymous structs/unions."""
        off = self._member_bits(self.find(_STRUCT, struct_name), member)
        if off is None:
            raise BTFError(f"struct {struct_name} has no member {member}")
        if off % 8:
            raise BTFError(f"{struct_name}.{member} is a bitfield")
        return off // 8

    def _member_bits(self, t: _Type, member: str) -> int | None:
        for i in range(t.vlen):
            name_off, mtype, moff = struct.unpack_from("<III", self._blob, t.data + 12 * i)
            if t.kind_flag:
                moff &= 0xFFFFFF  # the top 8 bits are the bitfield size
            name = self._str(name_off) if name_off else ""
            if name == member:
                return int(moff)
            if not name:  # anonymous struct/union: its members are ours, shifted
                inner = self._resolve(mtype)
                if inner is not None and inner.kind in (_STRUCT, _UNION):
                    found = self._member_bits(inner, member)
                    if found is not None:
                        return int(moff) + found
        return None

    def raw_tracepoint_params(self, event: str) -> list[str]:
        """The argument types of raw tracepoint `event` (after the context pointer), as
        'struct task_struct *', 'bool', 'unsigned int': from typedef btf_trace_<event>."""
        t = self._resolve(self.find(_TYPEDEF, f"btf_trace_{event}").ref)
        if t is None or t.kind != _PTR:
            raise BTFError(f"btf_trace_{event} is not a function pointer")
        proto = self._resolve(t.ref)
        if proto is None or proto.kind != _FUNC_PROTO:
            raise BTFError(f"btf_trace_{event} is not a function pointer")
        params = []
        for i in range(proto.vlen):
            _name, ptype = struct.unpack_from("<II", self._blob, proto.data + 8 * i)
            params.append(self._type_name(ptype))
        return params[1:]  # the first is the program's context (void *)

    def _type_name(self, tid: int) -> str:
        t = self._resolve(tid) if tid else None
        if t is None:
            return "void"
        if t.kind == _PTR:
            return self._type_name(t.ref) + " *"
        if t.kind in (_STRUCT, _UNION, _FWD, _ENUM):
            word = {_STRUCT: "struct", _UNION: "union", _ENUM: "enum"}.get(t.kind, "struct")
            return f"{word} {t.name}"
        return t.name


def load(path: Path = VMLINUX) -> BTF:
    try:
        return BTF(path.read_bytes())
    except OSError as e:
        raise BTFError(f"{path}: {e.strerror}") from None
