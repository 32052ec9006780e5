"""A socket workload that logs its own ground truth (CLOCK_MONOTONIC ns, like the trace).

Usage: python sockets.py TRUTH_JSON BASE_PORT UNIX_DIR
Each line of TRUTH_JSON: {"op", "endpoint", "expect", "t_ns", "pid"}.
"""

import contextlib
import errno
import json
import os
import select
import socket
import sys
import time

truth_path, base_port, unix_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
closed_port, open_port = base_port, base_port + 1
log = open(truth_path, "w")  # noqa: SIM115 - a log kept open for the whole run


def note(op, endpoint, expect, **kw):
    log.write(json.dumps(dict(op=op, endpoint=endpoint, expect=expect, t_ns=time.monotonic_ns(),
                              pid=os.getpid(), **kw)) + "\n")
    log.flush()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", open_port))
note("listen", f"127.0.0.1:{open_port}", "ok")
srv.listen(16)

# blocking connects: refused, then accepted
for _ in range(3):
    c = socket.socket()
    note("connect", f"127.0.0.1:{closed_port}", "refused", mode="blocking")
    with contextlib.suppress(ConnectionRefusedError):
        c.connect(("127.0.0.1", closed_port))
    c.close()
c = socket.socket()
note("connect", f"127.0.0.1:{open_port}", "ok", mode="blocking")
c.connect(("127.0.0.1", open_port))
a, _ = srv.accept()
a.close()
c.close()

# non-blocking connects (how Go connects): EINPROGRESS, the answer comes later
for port, expect in ((closed_port, "refused"), (closed_port, "refused"), (open_port, "ok")):
    c = socket.socket()
    c.setblocking(False)
    note("connect", f"127.0.0.1:{port}", expect, mode="nonblocking")
    rc = c.connect_ex(("127.0.0.1", port))
    assert rc in (0, errno.EINPROGRESS, errno.ECONNREFUSED), rc
    select.select([], [c], [], 2)
    c.close()
    if expect == "ok":
        a, _ = srv.accept()
        a.close()

# IPv6 loopback refused
c6 = socket.socket(socket.AF_INET6)
note("connect", f"[::1]:{closed_port}", "refused", mode="blocking")
with contextlib.suppress(OSError):
    c6.connect(("::1", closed_port))
c6.close()

# AF_UNIX: missing path (ENOENT), then a real listener, then an abstract name
missing = os.path.join(unix_dir, "missing.sock")
u = socket.socket(socket.AF_UNIX)
note("connect", "unix:" + missing, "enoent")
with contextlib.suppress(FileNotFoundError):
    u.connect(missing)
u.close()
path = os.path.join(unix_dir, "srv.sock")
us = socket.socket(socket.AF_UNIX)
us.bind(path)
note("listen", "unix:" + path, "ok")
us.listen(4)
u = socket.socket(socket.AF_UNIX)
note("connect", "unix:" + path, "ok")
u.connect(path)
u.close()
us.close()
abstract = f"\0k3sprof-test-{os.getpid()}"
ua = socket.socket(socket.AF_UNIX)
note("connect", "unix:@" + abstract[1:], "refused")
with contextlib.suppress(ConnectionRefusedError):
    ua.connect(abstract)
ua.close()
srv.close()
log.close()
