"""A startup-like burst with deterministic counts: what a k3s start does, compressed.

    python bench/workload_burst.py [--scale 1.0] [--json]

k3s's first seconds are short helper processes (modprobe, iptables, mount...) interleaved
with clients connecting to servers that are not up yet (refused TCP, missing or
not-yet-listening unix sockets), then accepted connects, and many listens. This runs the
same mix from ONE process so its cost can be timed with and without a tracer:

- ``helpers``: fork+exec of ``/bin/true`` (posix_spawn: clone+execve), waited for;
- ``tcp_refused``: blocking connect to a bound, NOT listening 127.0.0.1 port (RST, ECONNREFUSED);
- ``tcp_ok``: blocking connect to our own listener, then accept4 and close both ends;
- ``unix_missing``: connect to a path that does not exist (ENOENT);
- ``unix_refused``: connect to a bound, not listening unix socket (ECONNREFUSED);
- ``unix_ok``: connect to our own unix listener, then accept4;
- ``listens``: bind 127.0.0.1:0 + listen + close (a component starting a server).

The operations are interleaved (each kind spread over 20 slices) like a real start. The
elapsed time is measured inside the process, from the first operation to the last, so a
tracer's own start-up (strace spawning us, a recorder attaching) is never counted.

Every outcome is checked against what was asked (``observed == expected``): a run whose
counts differ exits 1, so a benchmark can trust that each run did the same work. The JSON
line also gives the syscall counts a tracer should see (``expected_syscalls``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields, replace

SLICES = 20
HELPER = "/bin/true"


@dataclass(frozen=True)
class Burst:
    """How many of each operation one burst performs."""

    helpers: int = 300
    tcp_refused: int = 2000
    tcp_ok: int = 2000
    unix_missing: int = 2000
    unix_refused: int = 1000
    unix_ok: int = 2000
    listens: int = 200

    def scaled(self, factor: float) -> Burst:
        return replace(self, **{f.name: max(1, round(getattr(self, f.name) * factor))
                                for f in fields(self)})


#: the setup sockets: TCP listener, unix listener, unix bound-not-listening, TCP bound-not-listening
SETUP_BINDS = 4
SETUP_LISTENS = 2


def expected_outcomes(b: Burst) -> dict[str, int]:
    """What the burst's own calls must return, per kind (the self-check)."""
    return {
        "helper_exit_0": b.helpers,
        "tcp_refused": b.tcp_refused,
        "tcp_ok": b.tcp_ok,
        "unix_enoent": b.unix_missing,
        "unix_refused": b.unix_refused,
        "unix_ok": b.unix_ok,
        "accepted": b.tcp_ok + b.unix_ok,
        "listens": b.listens,
    }


def expected_syscalls(b: Burst) -> dict[str, int]:
    """Syscalls (and process events) a tracer of this process tree must see."""
    return {
        "execve": b.helpers,
        "fork": b.helpers,
        "exit": b.helpers,  # the helpers; the burst process itself exits after reporting
        "connect": b.tcp_refused + b.tcp_ok + b.unix_missing + b.unix_refused + b.unix_ok,
        "accept": b.tcp_ok + b.unix_ok,
        "bind": SETUP_BINDS + b.listens,
        "listen": SETUP_LISTENS + b.listens,
    }


def slice_counts(total: int, slices: int = SLICES) -> list[int]:
    """Split total into `slices` near-equal parts that sum exactly to total."""
    return [total * (s + 1) // slices - total * s // slices for s in range(slices)]


class _Sockets:
    """The servers the burst talks to, set up before the timer starts."""

    def __init__(self, tmp: str) -> None:
        self.tcp_listener = socket.socket()
        self.tcp_listener.bind(("127.0.0.1", 0))
        self.tcp_listener.listen(4096)
        self.tcp_ok_addr = self.tcp_listener.getsockname()
        # bound but not listening: the kernel answers a SYN with RST -> ECONNREFUSED, and
        # nobody else can take the port while we hold it
        self.tcp_closed = socket.socket()
        self.tcp_closed.bind(("127.0.0.1", 0))
        self.tcp_refused_addr = self.tcp_closed.getsockname()
        self.unix_ok_path = os.path.join(tmp, "ok.sock")
        self.unix_listener = socket.socket(socket.AF_UNIX)
        self.unix_listener.bind(self.unix_ok_path)
        self.unix_listener.listen(4096)
        self.unix_refused_path = os.path.join(tmp, "refused.sock")
        self.unix_bound = socket.socket(socket.AF_UNIX)
        self.unix_bound.bind(self.unix_refused_path)
        self.unix_missing_path = os.path.join(tmp, "missing.sock")

    def close(self) -> None:
        for s in (self.tcp_listener, self.tcp_closed, self.unix_listener, self.unix_bound):
            s.close()


def _connect(family: int, addr: str | tuple[str, int], listener: socket.socket | None,
             seen: Counter[str], ok_key: str) -> None:
    with socket.socket(family) as s:
        try:
            s.connect(addr)
        except ConnectionRefusedError:
            seen[ok_key.replace("_ok", "_refused")] += 1
            return
        except FileNotFoundError:
            seen["unix_enoent"] += 1
            return
        seen[ok_key] += 1
        if listener is not None:
            conn, _ = listener.accept()  # accept4 on Linux
            conn.close()
            seen["accepted"] += 1


def _helper(i: int, seen: Counter[str]) -> None:
    pid = os.posix_spawn(HELPER, [HELPER, f"--burst-helper={i}"], os.environ)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        seen["helper_exit_0"] += 1


def _listen(seen: Counter[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        seen["listens"] += 1


def run(b: Burst) -> dict[str, object]:
    """Run one burst; returns its timing and what each operation returned."""
    seen: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="k3sprof-burst-") as tmp:
        sk = _Sockets(tmp)
        plan = {f.name: slice_counts(getattr(b, f.name)) for f in fields(b)}
        t0 = time.perf_counter()
        cpu0 = os.times()
        try:
            for s in range(SLICES):
                for i in range(plan["helpers"][s]):
                    _helper(i, seen)
                for _ in range(plan["unix_missing"][s]):
                    _connect(socket.AF_UNIX, sk.unix_missing_path, None, seen, "unix_ok")
                for _ in range(plan["tcp_refused"][s]):
                    _connect(socket.AF_INET, sk.tcp_refused_addr, None, seen, "tcp_ok")
                for _ in range(plan["unix_refused"][s]):
                    _connect(socket.AF_UNIX, sk.unix_refused_path, None, seen, "unix_ok")
                for _ in range(plan["listens"][s]):
                    _listen(seen)
                for _ in range(plan["tcp_ok"][s]):
                    _connect(socket.AF_INET, sk.tcp_ok_addr, sk.tcp_listener, seen, "tcp_ok")
                for _ in range(plan["unix_ok"][s]):
                    _connect(socket.AF_UNIX, sk.unix_ok_path, sk.unix_listener, seen, "unix_ok")
            elapsed = time.perf_counter() - t0
            cpu1 = os.times()
        finally:
            sk.close()
    expected = expected_outcomes(b)
    observed = {k: seen.get(k, 0) for k in sorted(set(expected) | set(seen))}
    return {
        "pid": os.getpid(),
        "elapsed_s": elapsed,
        # CPU of the burst and its helpers: includes the in-kernel probe cost (BPF runs in
        # the traced syscall) and is less sensitive to a busy neighbour than wall time
        "cpu_s": sum(cpu1[:4]) - sum(cpu0[:4]),
        "burst": asdict(b),
        "observed": observed,
        "expected": expected,
        "ok": observed == expected,
        "expected_syscalls": expected_syscalls(b),
        "tcp_refused_port": sk.tcp_refused_addr[1],
        "tcp_ok_port": sk.tcp_ok_addr[1],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count")
    args = ap.parse_args(argv)
    result = run(Burst().scaled(args.scale))
    print(json.dumps(result, sort_keys=True), flush=True)
    if not result["ok"]:
        print(f"burst: outcomes differ from the plan: {result['observed']} != "
              f"{result['expected']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
