"""`boot run` end to end, the way systemd runs it: the installed unit's ExecStart by hand, with
NOTIFY_SOCKET on a datagram socket this test listens on (PID 1 here is not systemd).

The bpf tests run the real recorder. The root tests put a small stand-in command where the
recorder would be (for failures the real one cannot be made to produce on demand); it leaves a
real recording, or one damaged the way a test needs (tests/unit/test_boot.py), which the real
analysis and report then read in process.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.test_boot import Logged, garbage_process_table, k3s_stopped_early, real_trace
from tracer import boot, host, schema
from tracer.boot import supervise

STANDIN_RECORDER = r"""
import os, shutil, sys, time
args = sys.argv[2:]
mode = os.environ["STANDIN_RECORD"]
out = args[args.index("-o") + 1]
if mode == "fail":
    print("k3sprof: error: cannot attach probes: boom", file=sys.stderr); sys.exit(5)
if mode == "hang":
    import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)
shutil.copytree(os.environ["STANDIN_TRACE"], out)
print("recording (stand-in)", flush=True)
"""


def standin(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    record: str = "ok",
    trace: Callable[[Path], Path] = real_trace,
) -> list[str]:
    """A recorder that fails, hangs, or leaves trace(DIR) as its recording."""
    script = tmp_path / "standin.py"
    script.write_text(STANDIN_RECORDER)
    monkeypatch.setenv("STANDIN_RECORD", record)
    monkeypatch.setenv("STANDIN_TRACE", str(trace(tmp_path / f"made-{uuid.uuid4().hex[:6]}")))
    return [sys.executable, str(script)]


# --- failure handling (root: `boot run` refuses to run unprivileged) ---------------------------


@pytest.mark.root
def test_recorder_failure_is_logged_and_nothing_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Logged()
    opts = boot.BootOptions(tmp_path / "out", None, 30, 3)
    res = boot.run(opts, log=log, tracer_cmd=standin(tmp_path, monkeypatch, record="fail"))
    assert not res.ok and res.record.rc == 5
    assert "exited with status 5" in log.text("error") and "no trace was written" in log.text(
        "error"
    )
    assert res.report is None and res.analysis is None
    run = json.loads((res.run_dir / boot.RUN_FILE).read_text())
    assert run["state"] == "failed" and run["record"]["rc"] == 5 and run["trace"] is None
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700


@pytest.mark.root
def test_failing_report_keeps_the_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracer.report.html import HtmlReport

    def broken(self: HtmlReport) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(HtmlReport, "render_bytes", broken)
    log = Logged()
    # (--end: a listen the real trace has; it is the analysis's end too)
    opts = boot.BootOptions(tmp_path / "out", "listen:55881", 30, 3)
    cmd = standin(tmp_path, monkeypatch)
    res = boot.run(opts, log=log, tracer_cmd=cmd, boot_id="f" * 32)
    assert res.ok and res.stopped_by == "recorder"
    assert res.record.argv[-2:] == ["--until", "listen:55881"]
    assert (res.trace_dir / "meta.json").exists()
    assert not (res.run_dir / boot.REPORT_FILE).exists()
    assert res.report is not None and res.report.error == "unexpected RuntimeError: boom"
    assert "report failed" in log.text("error") and "trace are kept" in log.text("error")
    # the analysis step is independent of the report's failure
    analysis = json.loads((res.run_dir / boot.ANALYSIS_FILE).read_text())
    assert analysis["end_reached"] is True and analysis["trace"]["path"] == str(res.trace_dir)
    run = json.loads((res.run_dir / boot.RUN_FILE).read_text())
    assert run["state"] == "done" and run["report"]["rc"] == 1 and run["boot_id"] == "f" * 32
    assert run["analysis"]["rc"] == 0 and run["analysis"]["error"] is None


@pytest.mark.root
def test_failing_analysis_keeps_the_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Logged()
    opts = boot.BootOptions(tmp_path / "out", None, 30, 3)
    cmd = standin(tmp_path, monkeypatch, trace=garbage_process_table)
    res = boot.run(opts, log=log, tracer_cmd=cmd)
    assert res.ok  # the recording is what `boot run` is judged by
    assert res.analysis is not None and res.analysis.rc == 3
    assert "process.arrows: column ts_ns has type string" in (res.analysis.error or "")
    assert res.report is not None and res.report.error == res.analysis.error
    assert sorted(p.name for p in res.run_dir.iterdir()) == [boot.RUN_FILE, boot.TRACE_SUBDIR]
    assert (res.trace_dir / "meta.json").exists()
    assert "analysis failed" in log.text("warning") and "Traceback" not in log.text("warning")
    run = json.loads((res.run_dir / boot.RUN_FILE).read_text())
    assert run["state"] == "done" and run["trace"] == str(res.trace_dir)
    assert run["analysis"]["error"] == run["report"]["error"] == res.analysis.error


@pytest.mark.root
def test_a_recorder_that_ignores_its_timeout_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervise, "GRACE_S", 1)
    log = Logged()
    opts = boot.BootOptions(tmp_path / "out", None, 1, 3)
    res = boot.run(opts, log=log, tracer_cmd=standin(tmp_path, monkeypatch, record="hang"))
    assert res.stopped_by == "backstop" and res.record.rc == -signal.SIGKILL and not res.ok
    assert "did not stop" in log.text("error")


@pytest.mark.root
def test_runs_rotate_to_keep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = standin(tmp_path, monkeypatch)
    opts = boot.BootOptions(tmp_path / "out", None, 30, 2)
    dirs = [boot.run(opts, log=Logged(), tracer_cmd=cmd).run_dir for _ in range(3)]
    assert [r.path for r in boot.list_runs(tmp_path / "out")] == dirs[1:]


# --- the real recorder, the way systemd runs the unit ------------------------------------------


@dataclass
class Notified:
    message: str
    pid: int
    stdout_before: bytes


class FakeSystemd:
    """Runs ExecStart like systemd does for Type=notify: NOTIFY_SOCKET, stdout captured."""

    def __init__(self, tmp_path: Path, argv: list[str]) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = tmp_path / "notify.sock"
        self.sock.bind(str(path))
        # like systemd: learn the sender's pid from its credentials
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "NOTIFY_SOCKET")}
        env.update(NOTIFY_SOCKET=str(path), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd="/"
        )
        assert self.proc.stdout is not None
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        self.stdout = b""
        self.notified: list[Notified] = []

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.out_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                return
            self.stdout += chunk

    def _recv(self) -> None:
        msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        pid = -1
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", data[: struct.calcsize("3i")])[0]
        # Everything the sender wrote before notifying is in the pipe already: read it first.
        self._drain()
        for line in msg.decode().splitlines():
            self.notified.append(Notified(line, pid, self.stdout))

    def wait_for(self, message: str, timeout_s: float = 90) -> Notified:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for n in self.notified:
                if n.message == message:
                    return n
            if self.proc.poll() is not None:
                self._drain()
                break
            ready, _, _ = select.select([self.sock, self.out_fd], [], [], 0.5)
            if self.sock in ready:
                self._recv()
            if self.out_fd in ready:
                self._drain()
        raise AssertionError(
            f"no {message} (exit {self.proc.poll()}):\n{self.stdout.decode()[-3000:]}"
        )

    def wait_exit(self, timeout_s: float = 120) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.sock, self.out_fd], [], [], 0.5)
            if self.sock in ready:
                self._recv()
            if self.out_fd in ready:
                self._drain()
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._drain()
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A uniquely named executable: its exec is the end milestone and proves tracing was live."""
    name = "kb" + uuid.uuid4().hex[:10]
    path = tmp_path / "bin" / name
    path.parent.mkdir()
    shutil.copy("/bin/true", path)
    return path


@pytest.mark.bpf
def test_exec_start_by_hand_notifies_after_probes_are_live_and_rotates(
    tmp_path: Path, planted: Path
) -> None:
    # GIVEN the unit installed (into a temp root) to stop at the planted exec, keeping 1 run
    root, out = tmp_path / "root", tmp_path / "out"
    opts = boot.BootOptions(out, f"exec:{planted.name}", 60, 1)
    boot.install(opts, root=root)
    unit = boot.read_unit(root)
    assert unit is not None
    argv, installed = unit
    assert installed.end == opts.end
    unit_text = boot.unit_path(root).read_text()

    # WHEN systemd would start it: ExecStart with NOTIFY_SOCKET
    sd = FakeSystemd(tmp_path, argv)
    try:
        ready = sd.wait_for("READY=1")
        # THEN READY=1 came only after the recorder said its probes are live
        assert b"recording" in ready.stdout_before, ready.stdout_before.decode()
        if ready.pid not in (-1, sd.proc.pid):
            # sent by a child of the main process: only NotifyAccess=all lets systemd accept it
            assert "NotifyAccess=all" in unit_text
        # and what starts after READY (k3s, here the planted exec) is in the trace
        started = subprocess.Popen([str(planted)])
        started.wait()
        assert sd.wait_exit() == 0, sd.stdout.decode()[-3000:]
    finally:
        sd.close()

    runs = boot.list_runs(out)
    assert len(runs) == 1
    first = runs[0]
    assert first.boot_id == host.boot_id("journal") and first.boot_id in first.name
    assert out.stat().st_mode & 0o777 == 0o700 and first.path.stat().st_mode & 0o777 == 0o700
    trace = schema.load(first.path / boot.TRACE_SUBDIR)
    proc = trace.table("process").to_pylist()
    mine = [r for r in proc if r["kind"] == "exec" and r["pid"] == started.pid]
    assert mine and mine[0]["filename"].endswith(planted.name)
    result = json.loads((first.path / boot.RUN_FILE).read_text())
    assert result["state"] == "done" and result["stopped_by"] == "recorder"
    # the report is there exactly when the report step succeeded ...
    if first.has_report:
        assert result["report"]["error"] is None
        assert "<html" in (first.path / boot.REPORT_FILE).read_text(errors="replace")[:2000].lower()
    else:
        # ... and a failure is the report's own: it fails the same way when run by hand
        assert result["report"]["error"]
        by_hand = subprocess.run(
            result["report"]["argv"], capture_output=True, text=True, check=False
        )
        assert by_hand.returncode == result["report"]["rc"] != 0
        assert result["report"]["error"].removeprefix("unexpected ") in by_hand.stderr
    # the analysis of the real boot-style trace (system-wide, no command) is there
    assert result["analysis"]["error"] is None, result["analysis"]
    analysis = json.loads((first.path / boot.ANALYSIS_FILE).read_text())
    assert analysis["trace"]["path"] == str(first.path / boot.TRACE_SUBDIR)
    assert analysis["counts"]

    # WHEN the next run is stopped like `systemctl stop` does (KillMode=mixed: SIGTERM to main)
    sd = FakeSystemd(_fresh(tmp_path), argv)
    try:
        sd.wait_for("READY=1")
        sd.proc.send_signal(signal.SIGTERM)
        assert sd.wait_exit() == 0, sd.stdout.decode()[-3000:]
    finally:
        sd.close()
    # THEN its trace is kept and, with --keep 1, the first run is rotated away
    runs = boot.list_runs(out)
    assert [r.seq for r in runs] == [first.seq + 1]
    assert runs[0].has_trace and schema.load(runs[0].path / boot.TRACE_SUBDIR).meta
    assert json.loads((runs[0].path / boot.RUN_FILE).read_text())["stopped_by"] == "signal"


def _fresh(tmp_path: Path) -> Path:
    d = tmp_path / f"sd{uuid.uuid4().hex[:6]}"
    d.mkdir()
    return d


@pytest.mark.root
def test_an_analysis_that_did_not_reach_the_end_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # analyze exits non-zero with a full answer (end_reached: false) for a boot stopped early
    log = Logged()
    opts = boot.BootOptions(tmp_path / "out", None, 30, 3)
    cmd = standin(tmp_path, monkeypatch, trace=k3s_stopped_early)
    res = boot.run(opts, log=log, tracer_cmd=cmd)
    assert res.analysis is not None and res.analysis.rc == 6 and res.analysis.error is None
    analysis = json.loads((res.run_dir / boot.ANALYSIS_FILE).read_text())
    assert analysis["profile"] == "k3s" and analysis["end_reached"] is False
    assert "end milestone not reached" in log.text("info")
    assert (res.run_dir / boot.REPORT_FILE).exists()


@pytest.mark.root
def test_installed_start_and_end_are_the_analysis_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a k3s boot that never reaches the k3s profile's end (the kubelet's listen:10250)
    # and a unit installed with --start and --end conditions the boot does reach
    log = Logged()
    opts = boot.BootOptions(tmp_path / "out", "exec:containerd", 30, 3, start="exec:k3s-server")
    cmd = standin(tmp_path, monkeypatch, trace=k3s_stopped_early)
    # WHEN the boot is recorded and analyzed by `boot run`
    res = boot.run(opts, log=log, tracer_cmd=cmd)
    # THEN the recorder was asked to stop at --end, and the analysis ends there too (not at the
    # profile's end): the path runs from the k3s exec (11 ms) to the containerd exec (501 ms)
    assert res.record.argv[-2:] == ["--until", "exec:containerd"]
    assert res.analysis is not None and res.analysis.rc == 0, log.text("info")
    analysis = json.loads((res.run_dir / boot.ANALYSIS_FILE).read_text())
    assert analysis["end_reached"] is True and analysis["end_by"] == "exec:containerd"
    assert analysis["start_by"] == "exec:k3s-server"
    assert analysis["total_ns"] == 490_000_000
    # and the command that redoes each step by hand carries the same window
    assert res.analysis.argv[-5:] == ["--start", "exec:k3s-server", "--end", "exec:containerd",
                                      "--json"]


@pytest.mark.bpf
def test_install_warms_the_cache_the_boot_recorder_loads(tmp_path: Path) -> None:
    """`boot install` puts the boot recorder's build in the bytecode cache: the first traced
    boot loads it instead of compiling while k3s waits. The recorder `boot run` starts (record
    with its defaults) then loads from that cache: the same build, not a near miss."""
    env = {**os.environ, "K3SPROF_BPF_CACHE": str(tmp_path / "cache")}  # empty: BCC compiles
    warm = [sys.executable, "-c", "from tracer import boot; w = boot.warm_bytecode_cache(); "
            "print(w.source, w.note)"]
    for expected in ("bcc", "cache"):
        p = subprocess.run(warm, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split()[0] == expected and p.stdout.split()[1] == "None", p.stdout
    p = subprocess.run([sys.executable, "-m", "tracer", "record", "-o", str(tmp_path / "t"),
                        "--", "true"], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    meta = json.loads((tmp_path / "t" / schema.META_FILE).read_text())
    assert meta["bpf_loaded_from"] == "cache", meta.get("bpf_cache_note")
