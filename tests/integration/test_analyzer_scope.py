"""Scope on a REAL recording: an unrelated process does listener-wait traffic while the recorded
command runs. The default scope (the recorded command's tree) must leave it out; --scope all
must show it. The two sides meet only through files, never through the process tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import K3SPROF, ROOT, free_port, record

pytestmark = pytest.mark.bpf

# Outside the recorder: a server that listens once a flag file exists, and a client retrying a
# fresh connect every 50 ms until it gets in (then it writes a done file).
FOREIGN = textwrap.dedent("""
    import os, socket, sys, time
    role, port, flag, done = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    deadline = time.monotonic() + 30
    if role == "server":
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen(8)
        c, _ = s.accept(); c.close(); s.close()
    else:
        while time.monotonic() < deadline:
            c = socket.socket()
            try:
                c.connect(("127.0.0.1", port)); c.close(); break
            except ConnectionRefusedError:
                c.close(); time.sleep(0.05)
        open(done, "w").close()
""")

# Recorded: its own listener wait (a child listens late, the parent retries), then it raises
# the flag for the foreign server and waits (on files) until the foreign client got in.
MINE = textwrap.dedent("""
    import os, socket, sys, time
    port, flag, done = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    if os.fork() == 0:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); time.sleep(0.3); s.listen(8)
        c, _ = s.accept(); c.close(); os._exit(0)
    while True:
        c = socket.socket()
        try:
            c.connect(("127.0.0.1", port)); c.close(); break
        except ConnectionRefusedError:
            c.close(); time.sleep(0.05)
    os.wait()
    time.sleep(0.2)
    open(flag, "w").close()
    deadline = time.monotonic() + 10
    while not os.path.exists(done) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
""")


def _analyze(trace: Path, *extra: str) -> dict[str, Any]:
    p = subprocess.run([*K3SPROF, "analyze", str(trace), "--json", *extra],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)  # type: ignore[no-any-return]


def _waits_on(result: dict[str, Any], port: int) -> list[dict[str, Any]]:
    return [w for w in result["waits"] if w["endpoint"] == f"127.0.0.1:{port}"]


def test_default_scope_is_the_recorded_tree_and_all_shows_the_rest(tmp_path: Path) -> None:
    foreign_port, my_port = free_port(), free_port()
    flag, done = tmp_path / "flag", tmp_path / "done"
    (tmp_path / "foreign.py").write_text(FOREIGN)
    (tmp_path / "mine.py").write_text(MINE)
    foreign = [subprocess.Popen([sys.executable, str(tmp_path / "foreign.py"), role,
                                 str(foreign_port), str(flag), str(done)])
               for role in ("server", "client")]
    try:
        out = tmp_path / "t"
        record(out, [sys.executable, str(tmp_path / "mine.py"), str(my_port), str(flag),
                     str(done)])
    finally:
        for p in foreign:
            p.kill()
            p.wait()
    assert done.exists(), "the foreign client never got in: the test did not set the scene"
    client_pid = foreign[1].pid

    tree = _analyze(out)
    assert tree["scope"]["mode"] == "tree" and tree["scope"]["left_out"] > 0
    assert not _waits_on(tree, foreign_port)
    assert client_pid not in {p["pid"] for p in tree["processes"]}
    (mine,) = _waits_on(tree, my_port)
    assert mine["kind"] == "listener" and mine["target"] is not None

    everything = _analyze(out, "--scope", "all")
    assert everything["scope"]["mode"] == "all"
    theirs = _waits_on(everything, foreign_port)
    assert [w["waiter"]["pid"] for w in theirs] == [client_pid]
    assert theirs[0]["target"]["pid"] == foreign[0].pid
    assert client_pid in {p["pid"] for p in everything["processes"]}
    assert len(_waits_on(everything, my_port)) == 1
