"""Turn decoded records into trace rows, pairing events that belong together.

Stateful across batches (a pair may straddle a flush):
  * exec: sys_enter_execve (argv) + sched_process_exec (success) or sys_exit_execve < 0
    (failure), matched by the calling tid, in time order (a shell trying PATH entries
    execs several times from one tid);
  * connect: the syscall (sys_exit_connect, carrying entry time, sockaddr and the struct
    sock * seen in SYN_SENT) + the socket's answer (SYN_SENT->ESTABLISHED / ->CLOSE) by
    skaddr, + the error report (refused/timed out/unreachable) by 4-tuple. An answer can
    arrive BEFORE the syscall's exit record (loopback handshakes complete inside connect());
  * listen on a unix socket: the path comes from the bind() of the same (pid, fd);
  * module: an init_module/finit_module syscall's row takes the name of the module_load
    the same task fired inside that syscall (the name is in the image, not an argument).
Fork/exit rows need no pairing and are built column-wise.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tracer import schema
from tracer.collector import decode as d

CLONE_THREAD = 0x00010000
TCP_ESTABLISHED = 1
TCP_CLOSE = 7
EINPROGRESS = 115
EALREADY = 114
#: errno -> connect outcome
OUTCOME_BY_ERRNO = {
    111: "refused",
    110: "timeout",
    113: "unreachable",
    101: "unreachable",
    104: "reset",
    2: "enoent",
}
#: exec'd programs whose purpose is known (basename -> process.tag)
EXEC_TAGS = {"modprobe": "module-loader", "insmod": "module-loader"}
#: an error report and the CLOSE it explains happen in one kernel call; allow slack
ERROR_PAIR_WINDOW_NS = 1_000_000_000
_UNSET = object()


class _Bounded(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries past a size: state must not grow forever."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            self.popitem(last=False)


def decode_sockaddr(raw: bytes, addrlen: int) -> tuple[str, str | None, int | None, str | None]:
    """(family, addr, port, endpoint) of a struct sockaddr as user space passed it."""
    if addrlen < 2:
        return "other", None, None, None
    fam = int.from_bytes(raw[0:2], "little")
    if fam == socket.AF_INET and addrlen >= 8:
        port = int.from_bytes(raw[2:4], "big")
        ip = socket.inet_ntop(socket.AF_INET, raw[4:8])
        return "inet", ip, port, f"{ip}:{port}"
    if fam == socket.AF_INET6 and addrlen >= 24:
        port = int.from_bytes(raw[2:4], "big")
        ip = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        return "inet6", ip, port, f"[{ip}]:{port}"
    if fam == socket.AF_UNIX:
        body = raw[2:addrlen]
        if not body:
            return "unix", "", None, "unix:"
        if body[0] == 0:  # abstract: the name is every byte after the NUL, by length
            name = "@" + body[1:].rstrip(b"\0").decode("utf-8", "replace")
        else:
            name = body.split(b"\0", 1)[0].decode("utf-8", "replace")
        return "unix", name, None, "unix:" + name
    return "other", None, None, None


def _tuple_key(r: np.void) -> tuple[int, int, int, bytes]:
    fam = int(r["family"])
    addr = bytes(r["daddr"])[: 4 if fam == socket.AF_INET else 16]
    return (fam, int(r["sport"]), int(r["dport"]), addr)


def _fixed_binary(a: np.ndarray, width: int) -> pa.Array:
    """n rows of `width` bytes as an Arrow fixed_size_binary array (zero copy)."""
    raw = a.tobytes()
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(raw) // width,
                                                [None, pa.py_buffer(raw)])


def _cstr_col(a: np.ndarray) -> list[str]:
    return [x.split(b"\0", 1)[0].decode("utf-8", "replace") for x in a.tolist()]


_SA_TYPES = (pa.string(), pa.string(), pa.int64(), pa.string())
_COLON = pa.scalar(":", pa.string())  # typed: see _sockaddr_cols on untyped conversions


def _sockaddr_cols(a: np.ndarray, *, accept: bool) -> list[pa.Array]:
    """(family, addr, port, endpoint) columns of the sockops' sockaddrs, as decode_sockaddr
    gives them row by row. IPv4 rows (the bulk: every TCP connect and accept peer, and each
    accept's peer port differs) are decoded with numpy/Arrow: distinct addresses once, the
    endpoint joined by Arrow. The rest decode each distinct (addrlen, valid bytes) once."""
    n = len(a)
    a = np.ascontiguousarray(a)
    fields = a.dtype.fields
    assert fields is not None
    sa_off = int(fields["sa"][1])
    rec = a.view(np.uint8).reshape(n, a.dtype.itemsize)
    sa_head = rec[:, sa_off : sa_off + 8]
    addrlen = np.minimum(a["addrlen"], d.SA_LEN).astype(np.int64)
    inet = ((sa_head[:, 0] == socket.AF_INET) & (sa_head[:, 1] == 0) & (addrlen >= 8))
    n_inet = int(np.count_nonzero(inet))
    cols4: list[pa.Array] = []
    if n_inet:
        h = sa_head[inet] if n_inet < n else sa_head
        ip = np.ascontiguousarray(h[:, 4:8]).view("<u4").ravel()
        uip, ip_inv = np.unique(ip, return_inverse=True)
        names = pa.array([socket.inet_ntop(socket.AF_INET, int(u).to_bytes(4, "little"))
                          for u in uip.tolist()], pa.string())
        ip_arr = names.take(pa.array(ip_inv.ravel()))
        port_arr = pa.array((h[:, 2].astype(np.int64) << 8) | h[:, 3])
        cols4 = [pa.array(["inet"], pa.string()).take(pa.array(np.zeros(n_inet, np.int64))),
                 ip_arr, port_arr,
                 pc.binary_join_element_wise(ip_arr, pc.cast(port_arr, pa.string()), _COLON)]
        if n_inet == n:
            return cols4
    rest = a[~inet] if n_inet else a
    m = len(rest)
    # the others: decode each distinct (addrlen, valid bytes) once
    rlen = addrlen[~inet] if n_inet else addrlen
    sab = np.frombuffer(rest["sa"].tobytes(), np.uint8).reshape(m, d.SA_LEN).copy()
    sab[np.arange(d.SA_LEN)[None, :] >= rlen[:, None]] = 0
    key = np.concatenate([rlen.astype("<u4").view(np.uint8).reshape(m, 4), sab], 1)
    # hash-based dictionary encoding (Arrow) instead of np.unique's sort of void rows
    enc = pc.dictionary_encode(_fixed_binary(np.ascontiguousarray(key), d.SA_LEN + 4))
    ukeys, sa_inv = enc.dictionary.to_pylist(), enc.indices
    dec = [decode_sockaddr(k[4:], int.from_bytes(k[:4], "little")) for k in ukeys]
    if accept:  # the peer of a unix accept has no address worth naming
        dec = [(f, None if f == "unix" else ad, p, e) for f, ad, p, e in dec]
    # typed: an untyped pa.array of Python objects tries to import dateutil (for
    # relativedelta) on EVERY call when it is not installed, ~0.2 ms each
    cols = [pa.array([x[i] for x in dec], t).take(sa_inv) for i, t in enumerate(_SA_TYPES)]
    if not n_inet:
        return cols
    # both kinds: back into row order
    order = np.concatenate([np.flatnonzero(inet), np.flatnonzero(~inet)])
    back = pa.array(np.argsort(order, kind="stable"))
    return [pa.concat_arrays([c4, c]).take(back) for c4, c in zip(cols4, cols)]


class Assembler:
    """Feed decoded record arrays; get back finished rows as Arrow tables per trace table."""

    def __init__(self, *, describe_cgroup: Any = None) -> None:
        self._pending_exec: dict[int, dict[str, Any]] = {}
        self._bind_by_fd: _Bounded = _Bounded(65536)  # (pid, fd) -> endpoint tuple
        self._listen_by_fd: _Bounded = _Bounded(65536)  # (pid, fd) -> endpoint
        self._connect_by_sk: dict[int, dict[str, Any]] = {}
        self._early_by_sk: _Bounded = _Bounded(16384)  # answers seen before their syscall
        self._close_by_tuple: _Bounded = _Bounded(16384)  # CLOSEd connects awaiting a report
        self._error_by_tuple: _Bounded = _Bounded(16384)  # reports awaiting their CLOSE
        self._held: list[dict[str, Any]] = []  # provisional "closed" rows, one flush of grace
        self._sa_cache: _Bounded = _Bounded(4096)
        self._module_load_by_tid: _Bounded = _Bounded(1024)  # tid -> (ts, name) of module_load
        self._describe_cgroup = describe_cgroup
        self.counts: dict[str, int] = {}

    # -- public ---------------------------------------------------------------------------
    def feed(self, typed: dict[int, list[np.ndarray]]) -> dict[str, pa.Table]:
        out: dict[str, pa.Table] = {}
        arrs = {t: d.concat(v) for t, v in typed.items() if v}
        for t, a in arrs.items():
            self.counts[str(t)] = self.counts.get(str(t), 0) + len(a)
        proc = self._process(arrs)
        if proc is not None:
            out["process"] = proc
        sock = self._socket(arrs)
        if sock is not None:
            out["socket"] = sock
        if d.EV_MODULE in arrs:
            out["module"] = self._module(arrs[d.EV_MODULE])
        if d.EV_CGROUP in arrs:
            out["cgroup"] = self._cgroup(arrs[d.EV_CGROUP])
        return out

    def finish(self) -> dict[str, pa.Table]:
        """Recording stopped: connects with no answer are 'pending'; emit everything held."""
        rows = self._held
        self._held = []
        for row in self._connect_by_sk.values():
            row["outcome"] = "pending"
            rows.append(row)
        self._connect_by_sk.clear()
        out: dict[str, pa.Table] = {}
        if rows:
            out["socket"] = self._socket_table(rows)
        return out

    # -- process --------------------------------------------------------------------------
    def _process(self, arrs: dict[int, np.ndarray]) -> pa.Table | None:
        parts: list[pa.Table] = []
        if d.EV_FORK in arrs:
            parts.append(self._forks(arrs[d.EV_FORK]))
        if d.EV_EXIT in arrs:
            parts.append(self._exits(arrs[d.EV_EXIT]))
        exec_rows = self._execs(arrs)
        if exec_rows:
            parts.append(_rows_table(schema.PROCESS, exec_rows))
        if not parts:
            return None
        t = pa.concat_tables(parts)
        return t.sort_by("ts_ns")

    def _forks(self, a: np.ndarray) -> pa.Table:
        thread = (a["clone_flags"] & CLONE_THREAD) != 0
        child = a["child_tid"].astype(np.int32)
        ppid = np.where(thread, a["tid"], a["pid"]).astype(np.int32)
        pid = np.where(thread, a["pid"], a["child_tid"]).astype(np.int32)
        n = len(a)
        return pa.Table.from_arrays(
            [
                pa.array(a["ts_ns"]),
                pa.array(np.where(thread, "thread", "fork").tolist(), pa.string()),
                pa.array(pid),
                pa.array(child),
                pa.array(ppid),
                pa.array(_cstr_col(a["comm"]), pa.string()),
                pa.array(a["uid"]),
                pa.array(a["cgroup_id"]),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.list_(pa.string())),
                pa.nulls(n, pa.bool_()),
                pa.nulls(n, pa.uint64()),
                pa.nulls(n, pa.int32()),
                pa.nulls(n, pa.int32()),
                pa.nulls(n, pa.int32()),
                pa.nulls(n, pa.string()),
            ],
            schema=schema.PROCESS,
        )

    def _exits(self, a: np.ndarray) -> pa.Table:
        n = len(a)
        has_code = (a["flags"] & 1) != 0
        has_sig = ((a["flags"] & 2) != 0) & ~has_code
        return pa.Table.from_arrays(
            [
                pa.array(a["ts_ns"]),
                pa.array(["exit"] * n, pa.string()),
                pa.array(a["pid"].astype(np.int32)),
                pa.array(a["tid"].astype(np.int32)),
                pa.nulls(n, pa.int32()),
                pa.array(_cstr_col(a["comm"]), pa.string()),
                pa.array(a["uid"]),
                pa.array(a["cgroup_id"]),
                pa.nulls(n, pa.string()),
                pa.nulls(n, pa.list_(pa.string())),
                pa.nulls(n, pa.bool_()),
                pa.nulls(n, pa.uint64()),
                pa.nulls(n, pa.int32()),
                pa.array(a["exit_code"], mask=~has_code),
                pa.array(a["signal"], mask=~has_sig),
                pa.nulls(n, pa.string()),
            ],
            schema=schema.PROCESS,
        )

    def _execs(self, arrs: dict[int, np.ndarray]) -> list[dict[str, Any]]:
        events: list[tuple[int, int, np.void]] = []
        for t in (d.EV_EXEC_ENTER, d.EV_EXEC, d.EV_EXEC_FAIL):
            if t in arrs:
                events += [(int(r["ts_ns"]), t, r) for r in arrs[t]]
        if not events:
            return []
        events.sort(key=lambda e: (e[0], e[1]))
        rows: list[dict[str, Any]] = []
        for ts, t, r in events:
            tid = int(r["tid"])
            if t == d.EV_EXEC_ENTER:
                argc = int(r["argc"])
                self._pending_exec[tid] = {
                    "enter_ns": ts,
                    "filename": d.cstr(bytes(r["filename"])),
                    "argv": [d.cstr(bytes(x)) for x in r["argv"][:argc]],
                    "argv_truncated": bool(r["truncated"]),
                }
                continue
            key = int(r["old_tid"]) if t == d.EV_EXEC else tid
            pend = self._pending_exec.pop(key, {})
            row = {
                "ts_ns": ts,
                "kind": "exec" if t == d.EV_EXEC else "exec_failed",
                "pid": int(r["pid"]),
                "tid": key,
                "comm": d.cstr(bytes(r["comm"])),
                "uid": int(r["uid"]),
                "cgroup_id": int(r["cgroup_id"]),
                "filename": pend.get("filename"),
                "argv": pend.get("argv"),
                "argv_truncated": pend.get("argv_truncated"),
                "enter_ns": pend.get("enter_ns"),
            }
            if t == d.EV_EXEC:
                row["filename"] = d.cstr(bytes(r["filename"])) or row["filename"]
            else:
                row["errno"] = -int(r["ret"])
            filename = str(row["filename"] or "")
            row["tag"] = EXEC_TAGS.get(filename.rsplit("/", 1)[-1])
            rows.append(row)
        return rows

    # -- socket ---------------------------------------------------------------------------
    def _sockaddr(self, r: np.void) -> tuple[str, str | None, int | None, str | None]:
        n = int(r["addrlen"])
        raw = bytes(r["sa"])[:n]
        hit = self._sa_cache.get(raw)
        if hit is None:
            hit = decode_sockaddr(raw, n)
            self._sa_cache[raw] = hit
        return hit

    def _socket(self, arrs: dict[int, np.ndarray]) -> pa.Table | None:
        rows: list[dict[str, Any]] = self._held  # last flush's provisional rows are final now
        self._held = []
        events: list[tuple[int, int, np.void]] = []
        parts: list[pa.Table] = []
        if d.EV_CONNECT in arrs:
            a = arrs[d.EV_CONNECT]
            # A connect whose outcome is in its own record touches no pairing state, so its
            # row is built column-wise: no TCP handshake (unix, failed before the SYN: the
            # return value is the outcome), or a TCP answer the kernel folded into the record
            # while the caller was still in connect() (ESTABLISHED, or CLOSE with the error
            # report that says why). Only the rest (non-blocking connects answered later,
            # a CLOSE whose report has not come yet) pair row by row.
            final = ((a["skaddr"] == 0) | (a["newstate"] == TCP_ESTABLISHED)
                     | ((a["newstate"] == TCP_CLOSE) & (a["error"] != 0)))
            if final.any():
                parts.append(self._sockops_columnar(a[final] if not final.all() else a,
                                                    "connect"))
            events += [(int(r["ts_ns"]), d.EV_CONNECT, r) for r in a[~final]]
        for t in (d.EV_BIND, d.EV_LISTEN, d.EV_SK_RESULT):
            if t in arrs:
                events += [(int(r["ts_ns"]), t, r) for r in arrs[t]]
        listens: list[tuple[int, tuple[int, int], str | None]] = []
        before: dict[tuple[int, int], Any] = {}  # (pid, fd) -> its listen endpoint before
        events.sort(key=lambda e: (e[0], e[1]))
        for ts, t, r in events:
            if t == d.EV_SK_RESULT:
                self._on_result(ts, r, rows)
                continue
            row = self._sockop_row(ts, t, r)
            pid, fd, ret = row["pid"], row["fd"], row["ret"]
            if t == d.EV_BIND:
                if ret == 0:
                    self._bind_by_fd[(pid, fd)] = (row["family"], row["addr"], row["port"],
                                                   row["endpoint"])
            elif t == d.EV_LISTEN:
                row["tcp"] = int(r["skaddr"]) != 0
                if row["endpoint"] is None:  # not TCP: the address is the bind's
                    bound = self._bind_by_fd.get((pid, fd))
                    if bound:
                        row["family"], row["addr"], row["port"], row["endpoint"] = bound
                if ret == 0:
                    before.setdefault((pid, fd), self._listen_by_fd.get((pid, fd)))
                    self._listen_by_fd[(pid, fd)] = row["endpoint"]
                    listens.append((ts, (pid, fd), row["endpoint"]))
            elif t == d.EV_CONNECT:
                if self._on_connect(row, r):
                    rows.append(row)
                continue
            rows.append(row)
        if d.EV_ACCEPT in arrs:
            parts.append(self._accepts(arrs[d.EV_ACCEPT], listens, before))
        if rows:
            parts.append(self._socket_table(rows))
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        both = pa.concat_tables(parts)
        return both.take(pc.sort_indices(both, [("ts_ns", "ascending")]))

    def _sockop_row(self, ts: int, t: int, r: np.void) -> dict[str, Any]:
        family, addr, port, endpoint = self._sockaddr(r)
        return {
            "ts_ns": int(r["enter_ns"]) or ts,
            "kind": d.SOCKOP_KIND[t],
            "pid": int(r["pid"]),
            "tid": int(r["tid"]),
            "comm": d.cstr(bytes(r["comm"])),
            "uid": int(r["uid"]),
            "cgroup_id": int(r["cgroup_id"]),
            "fd": int(r["fd"]),
            "family": family,
            "addr": addr,
            "port": port,
            "endpoint": endpoint,
            "ret": int(r["ret"]),
            "ret_ns": ts,
            "tcp": False,
        }

    def _accepts(self, a: np.ndarray, listens: list[tuple[int, tuple[int, int], str | None]],
                 before: dict[tuple[int, int], Any]) -> pa.Table:
        """Accept rows, column-wise: addr/port are the peer's, endpoint the listening socket
        the connection came in on, i.e. the latest listen() on that (pid, fd) before it."""
        n = len(a)
        key = (a["pid"].astype(np.uint64) << np.uint64(32)) | a["fd"].astype(np.uint32)
        ukeys, inv = np.unique(key, return_inverse=True)
        eps: list[str | None] = []
        ep_idx = np.empty(n, np.int64)
        hist: dict[tuple[int, int], list[tuple[int, str | None]]] = {}
        for ts, k, ep in listens:
            hist.setdefault(k, []).append((ts, ep))
        ts_all = a["ts_ns"]
        for i, uk in enumerate(ukeys.tolist()):
            k = (uk >> 32, int(np.int32(np.uint32(uk & 0xFFFFFFFF))))
            sel = inv == i
            h = hist.get(k)
            if h is None:  # no listen on it in this batch: what we knew before holds
                eps.append(self._listen_by_fd.get(k))
                ep_idx[sel] = len(eps) - 1
                continue
            # listened (again) during this batch: each accept takes the listen before it
            first = len(eps)
            eps.append(before.get(k))
            eps += [ep for _, ep in h]
            pos = np.searchsorted(np.array([t for t, _ in h], np.uint64), ts_all[sel],
                                  side="right")
            ep_idx[sel] = first + pos
        endpoint = pa.array(eps, pa.string()).take(pa.array(ep_idx))
        return self._sockops_columnar(a, "accept", endpoint=endpoint)

    def _sockops_columnar(self, a: np.ndarray, kind: str,
                          endpoint: pa.Array | None = None) -> pa.Table:
        """Rows of sockops that need no pairing (see _socket), built column-wise: each
        distinct sockaddr and comm is decoded once, outcomes mapped from distinct values."""
        n = len(a)
        ts = a["ts_ns"]
        enter = a["enter_ns"]
        ret = a["ret"].astype(np.int64)
        fam, addr, port, ep = _sockaddr_cols(a, accept=kind == "accept")
        cenc = pc.dictionary_encode(_fixed_binary(np.ascontiguousarray(a["comm"]), 16))
        comm = pa.array([c.split(b"\0", 1)[0].decode("utf-8", "replace")
                         for c in cenc.dictionary.to_pylist()], pa.string()).take(cenc.indices)
        cols: dict[str, Any] = {
            "ts_ns": pa.array(np.where(enter != 0, enter, ts)),
            "kind": pa.array([kind], pa.string()).take(pa.array(np.zeros(n, np.int64))),
            "pid": pa.array(a["pid"].astype(np.int32)),
            "tid": pa.array(a["tid"].astype(np.int32)),
            "comm": comm,
            "uid": pa.array(a["uid"]),
            "cgroup_id": pa.array(a["cgroup_id"]),
            "fd": pa.array(a["fd"]),
            "family": fam, "addr": addr, "port": port.cast(pa.int32()),
            "endpoint": ep if endpoint is None else endpoint,
            "ret": pa.array(ret),
            "ret_ns": pa.array(ts),
            "tcp": pa.array(np.zeros(n, bool)),
        }
        if kind == "connect":
            tcp = a["skaddr"] != 0
            # the outcome as a return value: the syscall's, or the folded TCP answer's
            # (ESTABLISHED = 0, CLOSE = -error of its report)
            eff = np.where(~tcp, ret,
                           np.where(a["newstate"] == TCP_ESTABLISHED, 0,
                                    -a["error"].astype(np.int64)))
            ueff, eff_inv = np.unique(eff, return_inverse=True)
            outc = [("ok" if r == 0 else "pending" if r == -EINPROGRESS
                     else OUTCOME_BY_ERRNO.get(-int(r), "error")) for r in ueff]
            has_errno = (eff < 0) & (eff != -EINPROGRESS)
            out_ns = np.where(tcp, a["result_ns"], ts)
            cols.update({
                "tcp": pa.array(tcp),
                "outcome": pa.array(outc, pa.string()).take(pa.array(eff_inv.ravel())),
                "outcome_errno": pa.array((-eff).astype(np.int32), mask=~has_errno),
                "outcome_ns": pa.array(out_ns),
            })
        return pa.Table.from_arrays(
            [cols[f.name].cast(f.type) if f.name in cols else pa.nulls(n, f.type)
             for f in schema.SOCKET], schema=schema.SOCKET)

    def _on_connect(self, row: dict[str, Any], r: np.void) -> bool:
        """Set the connect's outcome if known now; True when the row is ready to emit."""
        ret = row["ret"]
        skaddr = int(r["skaddr"])
        newstate = int(r["newstate"])
        if skaddr and newstate:
            # the kernel folded the answer in (CLOSE, with no error report yet: that may
            # still come as its own record); treat it as an answer seen before the exit
            self._early_by_sk[skaddr] = (int(r["result_ns"]), newstate, _tuple_key(r))
        if skaddr == 0:
            # no TCP handshake (unix, UDP, or failed before SYN): the syscall is the answer
            if ret == 0:
                row["outcome"] = "ok"
            elif ret == -EINPROGRESS:
                row["outcome"] = "pending"  # non-TCP async connect: nothing more will come
            else:
                row["outcome"] = OUTCOME_BY_ERRNO.get(-ret, "error")
                row["outcome_errno"] = -ret
            row["outcome_ns"] = row["ret_ns"]
            return True
        row["tcp"] = True
        early = self._early_by_sk.pop(skaddr, None)
        if early is not None and early[0] >= row["ts_ns"]:
            self._apply_state(row, *early)
            return row.get("outcome") is not None and not row.get("_provisional")
        if ret not in (0, -EINPROGRESS, -EALREADY):
            row["outcome"] = OUTCOME_BY_ERRNO.get(-ret, "error")
            row["outcome_errno"] = -ret
            row["outcome_ns"] = row["ret_ns"]
            return True
        if ret == 0:
            row["outcome"] = "ok"
            row["outcome_ns"] = row["ret_ns"]
            return True
        self._connect_by_sk[skaddr] = row
        return False

    def _apply_state(self, row: dict[str, Any], ts: int, newstate: int, key: Any) -> None:
        if newstate == TCP_ESTABLISHED:
            row["outcome"] = "ok"
            row["outcome_ns"] = ts
            return
        # CLOSE from SYN_SENT: failed; an error report (before or right after) says why
        row["outcome_ns"] = ts
        err = self._error_by_tuple.pop(key, None)
        if err is not None and abs(ts - err[0]) <= ERROR_PAIR_WINDOW_NS:
            row["outcome"] = OUTCOME_BY_ERRNO.get(err[1], "error")
            row["outcome_errno"] = err[1]
            return
        row["outcome"] = "closed"
        row["_provisional"] = True
        self._close_by_tuple[key] = row
        self._held.append(row)

    def _on_result(self, ts: int, r: np.void, rows: list[dict[str, Any]]) -> None:
        key = _tuple_key(r)
        skaddr = int(r["skaddr"])
        if skaddr == 0:  # an error report
            err = int(r["error"])
            row = self._close_by_tuple.pop(key, None)
            if row is not None and abs(ts - row["outcome_ns"]) <= ERROR_PAIR_WINDOW_NS:
                row["outcome"] = OUTCOME_BY_ERRNO.get(err, "error")
                row["outcome_errno"] = err
                row.pop("_provisional", None)
            else:
                self._error_by_tuple[key] = (ts, err)
            return
        row = self._connect_by_sk.pop(skaddr, None)
        newstate = int(r["newstate"])
        if row is None:
            self._early_by_sk[skaddr] = (ts, newstate, key)
            return
        self._apply_state(row, ts, newstate, key)
        if not row.get("_provisional"):
            rows.append(row)

    def _socket_table(self, rows: list[dict[str, Any]]) -> pa.Table:
        for row in rows:
            row.pop("_provisional", None)
        rows.sort(key=lambda x: x["ts_ns"])
        return _rows_table(schema.SOCKET, rows)

    # -- module, cgroup -------------------------------------------------------------------
    def _module(self, a: np.ndarray) -> pa.Table:
        a = a[np.argsort(a["ts_ns"], kind="stable")]
        kinds = [d.MODULE_KIND.get(int(k), "unknown") for k in a["kind"]]
        names = _cstr_col(a["name"])
        for i, kind in enumerate(kinds):
            tid = int(a["tid"][i])
            if kind == "load":
                self._module_load_by_tid[tid] = (int(a["ts_ns"][i]), names[i])
            elif kind in ("init_module", "finit_module"):
                # module_load fires inside the syscall, on the calling task: a load on this
                # tid since the syscall's entry names it (a failed load, e.g. EEXIST, has none)
                load = self._module_load_by_tid.pop(tid, None)
                if load is not None and load[0] >= int(a["enter_ns"][i]):
                    names[i] = load[1]
        has_ret = a["kind"] >= 3
        return pa.Table.from_arrays(
            [
                pa.array(a["ts_ns"]),
                pa.array(kinds, pa.string()),
                pa.array(names, pa.string()),
                pa.array(a["pid"].astype(np.int32)),
                pa.array(a["tid"].astype(np.int32)),
                pa.array(_cstr_col(a["comm"]), pa.string()),
                pa.array(a["cgroup_id"]),
                pa.array(a["ret"], mask=~has_ret),
                pa.array(a["enter_ns"].astype(np.uint64), mask=~has_ret),
            ],
            schema=schema.MODULE,
        )

    def _cgroup(self, a: np.ndarray) -> pa.Table:
        rows = []
        for r in a:
            path = d.cstr(bytes(r["path"]))
            info = self._describe_cgroup(path) if self._describe_cgroup else {}
            rows.append(
                {
                    "ts_ns": int(r["ts_ns"]),
                    "cgroup_id": int(r["id"]),
                    "path": path,
                    "unit": info.get("unit"),
                    "pod_uid": info.get("pod_uid"),
                    "container_id": info.get("container_id"),
                }
            )
        return _rows_table(schema.CGROUP, rows)


def _rows_table(sch: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pydict(
        {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in sch}, schema=sch
    )
