"""Compile once, load many: BCC's finished bytecode, cached and loaded with plain syscalls.

`record` start -> probes live is boot time (the boot unit holds k3s until then), and BCC's
compile is most of it: 1-2 s here, ~30 s in a TCG VM, plus ~150 MB of LLVM in our RSS. BCC
stays the compiler of record: the first recording on a machine compiles with BCC as always,
then saves what BCC handed the kernel, per program: the instructions (BCC has already
rewritten map references into BPF_PSEUDO_MAP_FD loads of its map fds), the tracepoint it
attaches to, and each referenced map's definition (type, key/value size, entries, flags,
name, read back from the kernel with BPF_OBJ_GET_INFO_BY_FD). Later recordings with the SAME
key (kernel release, BPF source text, cflags, BCC version, architecture) create the maps,
patch the map fds into the instructions, load the programs (the kernel's verifier checks
them again, as for any load) and attach them to their tracepoints the way BCC does
(perf_event_open + PERF_EVENT_IOC_SET_BPF), without importing bcc or LLVM.

Safety: the cache lives in a root-only directory (0700, owned by root); a file that is not
owned by root or is writable by others is ignored, as is anything that fails to parse, to
load or to attach: the caller then compiles with BCC (and rewrites the entry). The key
includes everything the bytecode depends on, and the tracepoint formats (the programs read
`args` at offsets taken from them) are part of the source hash via their text.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import platform
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_DIR = Path(os.environ.get("K3SPROF_BPF_CACHE", "/var/cache/k3sprof/bpf"))
FORMAT = 1

#: syscall numbers, per architecture (no cache use elsewhere: BCC then always compiles)
_NR = {"x86_64": {"bpf": 321, "perf_event_open": 298},
       "aarch64": {"bpf": 280, "perf_event_open": 241}}
_BPF_MAP_CREATE, _BPF_MAP_LOOKUP_ELEM, _BPF_MAP_UPDATE_ELEM = 0, 1, 2
_BPF_MAP_GET_NEXT_KEY = 4
_BPF_PROG_LOAD, _BPF_OBJ_GET_INFO_BY_FD = 5, 15
_BPF_PROG_TYPE_TRACEPOINT = 5
_BPF_PROG_TYPE_PERF_EVENT = 7
_BPF_MAP_TYPE_STACK_TRACE = 7
#: programs attached by the collector, not to a tracepoint: name prefix -> program type
#: (bpf/stacks.bpf.c's on-CPU sampler is a perf_event program on the CPU clock)
PERF_EVENT_PREFIX = b"stacks__"
_BPF_PSEUDO_MAP_FD = 1
_LD_IMM64 = 0x18
_PERF_TYPE_TRACEPOINT = 2
_PERF_TYPE_SOFTWARE = 1
_PERF_COUNT_SW_CPU_CLOCK = 0
_PERF_ATTR_FREQ = 1 << 10  # perf_event_attr.freq: sample_freq (Hz), not a period
_PERF_SAMPLE_RAW = 1 << 10
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_EVENT_IOC_SET_BPF = 0x40042408

_libc = ctypes.CDLL(None, use_errno=True)


class CacheError(Exception):
    """The cached entry cannot be used here (the caller falls back to BCC)."""


def _nr(name: str) -> int:
    nr = _NR.get(platform.machine())
    if nr is None:
        raise CacheError(f"no syscall numbers for {platform.machine()}")
    return nr[name]


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    ret: int = _libc.syscall(_nr("bpf"), cmd, attr, len(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise CacheError(f"bpf({cmd}): {os.strerror(err)}")
    return ret


def key(source: str, cflags: Sequence[str], bcc_version: str,
        tracepoint_formats: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in (str(FORMAT), platform.release(), platform.machine(), bcc_version, source,
                 "\0".join(cflags), *tracepoint_formats):
        h.update(part.encode())
        h.update(b"\0\1")
    return h.hexdigest()[:32]


def _trusted_dir(d: Path, create: bool) -> bool:
    if create:
        with contextlib.suppress(OSError):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = d.stat()
    except OSError:
        return False
    return st.st_uid == 0 and not st.st_mode & 0o022


def entry_path(k: str) -> Path:
    return CACHE_DIR / f"{k}.json"


# -- saving what BCC compiled ----------------------------------------------------------------
def map_info(fd: int) -> dict[str, Any]:
    """A map's definition, from the kernel (struct bpf_map_info)."""
    info = ctypes.create_string_buffer(96)
    attr = ctypes.create_string_buffer(16)
    struct.pack_into("<IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr)
    mtype, _id, ksize, vsize, entries, flags = struct.unpack_from("<IIIIII", info.raw, 0)
    name = info.raw[24:40].split(b"\0", 1)[0].decode()
    return {"type": mtype, "key_size": ksize, "value_size": vsize, "max_entries": entries,
            "flags": flags, "name": name}


def _map_fds(insns: bytes) -> set[int]:
    fds = set()
    for i in range(0, len(insns) - 8, 8):
        op, regs, _off, imm = struct.unpack_from("<BBhi", insns, i)
        if op == _LD_IMM64 and regs >> 4 == _BPF_PSEUDO_MAP_FD:
            fds.add(imm)
    return fds


def save(bpf: Any, k: str) -> Path | None:
    """After a BCC compile: store its programs and map definitions under key k."""
    if platform.machine() not in _NR or not _trusted_dir(CACHE_DIR, create=True):
        return None
    progs = []
    fds: set[int] = set()
    for name in list(bpf.funcs):
        name_b = name if isinstance(name, bytes) else name.encode()
        if name_b.startswith(PERF_EVENT_PREFIX):
            # attached per CPU by the collector (probes.Attached), not here
            insns = bpf.dump_func(name_b)
            fds |= _map_fds(insns)
            progs.append({"name": name_b.decode(), "perf_event": "cpu-clock",
                          "insns": insns.hex()})
            continue
        if not name_b.startswith(b"tracepoint__"):
            continue
        insns = bpf.dump_func(name_b)
        fds |= _map_fds(insns)
        tp = name_b[len(b"tracepoint__"):].decode().replace("__", ":", 1)
        progs.append({"name": name_b.decode(), "tracepoint": tp, "insns": insns.hex()})
    entry = {"format": FORMAT, "license": "GPL", "programs": progs,
             "maps": {str(fd): map_info(fd) for fd in sorted(fds)}}
    path = entry_path(k)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(entry, f)
    os.replace(tmp, path)
    return path


# -- loading without BCC ---------------------------------------------------------------------
@dataclass
class Loaded:
    """Programs loaded and attached from the cache; the recorder's view of them."""

    maps: dict[str, int]  # map name -> fd
    map_defs: dict[str, dict[str, Any]]
    prog_fds: dict[str, int]  # program name -> fd
    tracepoint_fds: dict[str, int] = field(default_factory=dict)  # "cat:name" -> perf fd

    def close(self) -> None:
        for fd in [*self.tracepoint_fds.values(), *self.prog_fds.values(), *self.maps.values()]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.tracepoint_fds.clear()
        self.prog_fds.clear()
        self.maps.clear()


def _create_map(d: dict[str, Any]) -> int:
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("<IIIII", attr, 0, d["type"], d["key_size"], d["value_size"],
                     d["max_entries"], d["flags"])
    struct.pack_into("16s", attr, 28, d["name"].encode()[:15])  # map_name
    return _bpf(_BPF_MAP_CREATE, attr)


def _load_prog(name: str, insns: bytes, license_: bytes,
               prog_type: int = _BPF_PROG_TYPE_TRACEPOINT) -> int:
    buf = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license_)
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("<IIQQ", attr, 0, prog_type, len(insns) // 8,
                     ctypes.addressof(buf), ctypes.addressof(lic))
    struct.pack_into("16s", attr, 48, name.encode()[:15])  # prog_name
    return _bpf(_BPF_PROG_LOAD, attr)


def _patch(insns: bytes, fd_map: dict[int, int]) -> bytes:
    out = bytearray(insns)
    for i in range(0, len(out) - 8, 8):
        op, regs, _off, imm = struct.unpack_from("<BBhi", out, i)
        if op == _LD_IMM64 and regs >> 4 == _BPF_PSEUDO_MAP_FD:
            if imm not in fd_map:
                raise CacheError(f"instruction {i // 8} refers to an unknown map fd {imm}")
            struct.pack_into("<i", out, i + 4, fd_map[imm])
    return bytes(out)


def attach_tracepoint(prog_fd: int, tracefs: Path, tp: str) -> int:
    """What BCC's bpf_attach_tracepoint does: a perf event on the tracepoint, program set."""
    category, event = tp.split(":", 1)
    tp_id = int((tracefs / "events" / category / event / "id").read_text())
    attr = ctypes.create_string_buffer(112)
    struct.pack_into("<IIQQQ", attr, 0, _PERF_TYPE_TRACEPOINT, 112, tp_id, 1, _PERF_SAMPLE_RAW)
    struct.pack_into("<I", attr, 48, 1)  # wakeup_events
    pfd: int = _libc.syscall(_nr("perf_event_open"), attr, -1, 0, -1, _PERF_FLAG_FD_CLOEXEC)
    if pfd < 0:
        raise CacheError(f"perf_event_open({tp}): {os.strerror(ctypes.get_errno())}")
    ioctl = _libc.ioctl
    if ioctl(pfd, _PERF_EVENT_IOC_SET_BPF, ctypes.c_int(prog_fd)) < 0 or \
            ioctl(pfd, _PERF_EVENT_IOC_ENABLE, 0) < 0:
        err = ctypes.get_errno()
        os.close(pfd)
        raise CacheError(f"attaching to {tp}: {os.strerror(err)}")
    return pfd


def online_cpus() -> list[int]:
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def open_cpu_clock(cpu: int, hz: int) -> int:
    """A software CPU-clock perf event on one CPU, all tasks, sampling at hz (frequency
    mode), created disabled-free as BCC's attach_perf_event does."""
    attr = ctypes.create_string_buffer(112)
    struct.pack_into("<IIQQ", attr, 0, _PERF_TYPE_SOFTWARE, 112, _PERF_COUNT_SW_CPU_CLOCK, hz)
    struct.pack_into("<Q", attr, 40, _PERF_ATTR_FREQ)
    pfd: int = _libc.syscall(_nr("perf_event_open"), attr, -1, cpu, -1, _PERF_FLAG_FD_CLOEXEC)
    if pfd < 0:
        raise CacheError(f"perf_event_open(cpu-clock, cpu {cpu}): "
                         f"{os.strerror(ctypes.get_errno())}")
    return pfd


def attach_perf_event(prog_fd: int, hz: int) -> dict[str, int]:
    """The sampler on every online CPU: "cpu-clock:N" -> perf event fd (what BCC's
    attach_perf_event does: perf_event_open per CPU + PERF_EVENT_IOC_SET_BPF)."""
    out: dict[str, int] = {}
    try:
        for cpu in online_cpus():
            pfd = open_cpu_clock(cpu, hz)
            out[f"cpu-clock:{cpu}"] = pfd
            if _libc.ioctl(pfd, _PERF_EVENT_IOC_SET_BPF, ctypes.c_int(prog_fd)) < 0 or \
                    _libc.ioctl(pfd, _PERF_EVENT_IOC_ENABLE, 0) < 0:
                raise CacheError(f"attaching the sampler on cpu {cpu}: "
                                 f"{os.strerror(ctypes.get_errno())}")
    except (CacheError, OSError):
        for fd in out.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return out


def stacks_support() -> str | None:
    """Why user stacks cannot be recorded here, or None when they can: a software CPU-clock
    perf event must open (the sampler) and a stack-trace map must be creatable."""
    try:
        os.close(open_cpu_clock(online_cpus()[0], 49))
    except (CacheError, OSError, IndexError) as e:
        return f"no CPU-clock perf events ({e})"
    try:
        os.close(_create_map({"type": _BPF_MAP_TYPE_STACK_TRACE, "key_size": 4,
                              "value_size": 64, "max_entries": 1, "flags": 0,
                              "name": "k3sprof_probe"}))
    except CacheError as e:
        return f"no BPF stack-trace map ({e})"
    return None


def load(k: str, tracefs: Path) -> Loaded | None:
    """Load and attach the entry for key k; None if there is none. Raises CacheError if it
    exists but cannot be used (everything opened so far is closed again)."""
    path = entry_path(k)
    if not _trusted_dir(CACHE_DIR, create=False):
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise CacheError(f"{path} is not a root-only file: ignored")
    try:
        entry = json.loads(path.read_text())
        if entry.get("format") != FORMAT:
            raise CacheError("old cache format")
    except (OSError, ValueError) as e:
        raise CacheError(f"{path}: {e}") from None
    out = Loaded(maps={}, map_defs={}, prog_fds={})
    try:
        fd_map: dict[int, int] = {}
        for old_fd, d in entry["maps"].items():
            new_fd = _create_map(d)
            fd_map[int(old_fd)] = new_fd
            out.maps[d["name"]] = new_fd
            out.map_defs[d["name"]] = d
        lic = str(entry.get("license", "GPL")).encode()
        for p in entry["programs"]:
            insns = _patch(bytes.fromhex(p["insns"]), fd_map)
            ptype = _BPF_PROG_TYPE_PERF_EVENT if "perf_event" in p else _BPF_PROG_TYPE_TRACEPOINT
            out.prog_fds[p["name"]] = _load_prog(p["name"], insns, lic, ptype)
        for p in entry["programs"]:
            if "perf_event" in p:
                continue  # attached per CPU by the collector (probes.Attached)
            out.tracepoint_fds[p["tracepoint"]] = attach_tracepoint(
                out.prog_fds[p["name"]], tracefs, p["tracepoint"])
    except (CacheError, KeyError, ValueError, OSError) as e:
        out.close()
        raise CacheError(str(e)) from None
    return out


def _possible_cpus() -> int:
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def lookup(map_fd: int, key_bytes: bytes, value_size: int, percpu: bool = False) -> bytes:
    """BPF_MAP_LOOKUP_ELEM; per-CPU maps return one 8-aligned value per possible CPU."""
    size = ((value_size + 7) & ~7) * _possible_cpus() if percpu else value_size
    k = ctypes.create_string_buffer(key_bytes, len(key_bytes))
    v = ctypes.create_string_buffer(size)
    attr = ctypes.create_string_buffer(32)
    struct.pack_into("<IIQQ", attr, 0, map_fd, 0, ctypes.addressof(k), ctypes.addressof(v))
    _bpf(_BPF_MAP_LOOKUP_ELEM, attr)
    return v.raw


def update(map_fd: int, key_bytes: bytes, value: bytes) -> None:
    k = ctypes.create_string_buffer(key_bytes, len(key_bytes))
    v = ctypes.create_string_buffer(value, len(value))
    attr = ctypes.create_string_buffer(32)
    struct.pack_into("<IIQQQ", attr, 0, map_fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
    _bpf(_BPF_MAP_UPDATE_ELEM, attr)


def keys(map_fd: int, key_size: int, limit: int = 1 << 20) -> list[bytes]:
    """Every key of a hash map (BPF_MAP_GET_NEXT_KEY from no key until ENOENT). Entries
    added or deleted meanwhile may be missed or seen twice: read frozen maps only."""
    out: list[bytes] = []
    k = ctypes.create_string_buffer(key_size)
    nxt = ctypes.create_string_buffer(key_size)
    attr = ctypes.create_string_buffer(24)
    first = True
    while len(out) < limit:
        struct.pack_into("<IIQQ", attr, 0, map_fd, 0, 0 if first else ctypes.addressof(k),
                         ctypes.addressof(nxt))
        ret: int = _libc.syscall(_nr("bpf"), _BPF_MAP_GET_NEXT_KEY, attr, len(attr))
        if ret < 0:
            err = ctypes.get_errno()
            if err == 2:  # ENOENT: that was the last key
                break
            raise CacheError(f"bpf(MAP_GET_NEXT_KEY): {os.strerror(err)}")
        first = False
        out.append(nxt.raw)
        ctypes.memmove(k, nxt, key_size)
    return out


def read_mmapable_array(map_fd: int, value_size: int, max_entries: int) -> bytes:
    """The whole of a BPF_F_MMAPABLE array, in one copy (values are 8-aligned)."""
    import mmap

    size = ((value_size + 7) & ~7) * max_entries
    length = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
    with mmap.mmap(map_fd, length, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        return m[:size]
