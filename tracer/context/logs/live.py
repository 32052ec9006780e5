"""Live log sources, driven by the recorder (tracer.context.ContextSource): the traced command's
stdout/stderr stamped on arrival, and journald followed for a unit (journal times converted).
Either way a line's own sub-millisecond stamp, when consistent with its receipt, places it
(tracer.context.logs.rows.own_time_ns).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import tzinfo
from typing import IO, Any

import pyarrow as pa

from tracer import host
from tracer.context.logs.parse import ParsedLine, parse_line
from tracer.context.logs.rows import LogRows, realtime_offset_ns

#: a line longer than this is cut into several rows (nothing is dropped) so memory stays bounded
MAX_LINE_BYTES = 64 * 1024


class _ThreadedLogSource:
    table = "log"

    def __init__(self, source: str, *, default_pid: int | None = None,
                 realtime_offset_ns: int | None = None) -> None:
        self._rows = LogRows(source, default_pid)
        #: realtime - monotonic of the trace (meta.json), to put lines' own stamps on our clock
        self._offset = realtime_offset_ns
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: why the source produced nothing, if it failed (for the trace metadata)
        self.problem: str | None = None

    def _add(self, raw: str, parsed: ParsedLine, received_ns: int | None,
             received_from: str) -> None:
        if self._offset is None:
            self._offset = realtime_offset_ns()
        with self._lock:
            self._rows.add_received(raw, parsed, received_ns, received_from, self._offset)

    def drain(self) -> pa.Table | None:
        with self._lock:
            return self._rows.take()

    def _start_thread(self, target: Any, name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()


class CommandOutputSource(_ThreadedLogSource):
    """Reads a subprocess pipe, passes every byte through, and stamps each line on arrival.

    stream: the pipe (a binary file object or an fd). name: "stdout" or "stderr" (the row's
    source). passthrough: where the bytes go unchanged: a binary file, an fd, True for this
    process's own stream of the same name, or None/False to swallow them.
    pid: the process the lines are attributed to when they name none themselves: the command
    whose pipe this is (children that inherit the pipe write to it too; the pipe cannot say
    which one wrote, so a line is the command's unless it names its pid, as klog does).
    realtime_offset_ns: the trace's realtime - monotonic (measured at start() when None).
    """

    def __init__(self, stream: IO[bytes] | int, name: str,
                 passthrough: IO[bytes] | int | bool | None = True, *,
                 pid: int | None = None, realtime_offset_ns: int | None = None) -> None:
        super().__init__(name, default_pid=pid, realtime_offset_ns=realtime_offset_ns)
        self._fd = stream if isinstance(stream, int) else stream.fileno()
        if passthrough is True:
            passthrough = sys.stderr.buffer if name == "stderr" else sys.stdout.buffer
        self._out: IO[bytes] | int | None = passthrough or None
        #: the time stop() was called: reading continues briefly so nothing in the pipe is lost
        self.stop_grace_s = 1.0

    def start(self) -> None:
        if self._offset is None:
            self._offset = realtime_offset_ns()
        self._start_thread(self._run, f"k3sprof-{self._rows.source}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.stop_grace_s + 1.0)

    def _passthrough(self, data: bytes) -> None:
        out = self._out
        if out is None:
            return
        try:
            if isinstance(out, int):
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
            else:
                out.write(data)
                out.flush()
        except (OSError, ValueError):
            self._out = None  # the terminal went away: keep recording, stop echoing

    def _run(self) -> None:
        pending = b""
        stop_deadline: float | None = None
        while True:
            if self._stop.is_set() and stop_deadline is None:
                stop_deadline = time.monotonic() + self.stop_grace_s
            timeout = 0.1
            if stop_deadline is not None:
                timeout = max(0.0, min(timeout, stop_deadline - time.monotonic()))
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                if stop_deadline is not None and time.monotonic() >= stop_deadline:
                    break
                continue
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                data = b""
            arrival = time.monotonic_ns()  # stamp first: everything below is our own time
            if not data:
                break
            self._passthrough(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(line, arrival)
            while len(pending) > MAX_LINE_BYTES:
                self._line(pending[:MAX_LINE_BYTES], arrival)
                pending = pending[MAX_LINE_BYTES:]
        if pending:
            self._line(pending, time.monotonic_ns())

    def _line(self, data: bytes, arrival_ns: int) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r")
        self._add(text, parse_line(text), arrival_ns, "arrival")


def journal_row(record: dict[str, Any], *, boot_id: str, offset_ns: int,
                tz: tzinfo | None = None) -> tuple[str, ParsedLine, int | None, str]:
    """One `journalctl -o json` record -> (raw text, parsed, ts_ns, time_from).

    Same boot (``_BOOT_ID`` = this kernel's boot id): ``__MONOTONIC_TIMESTAMP`` (us) IS our clock,
    exact to the microsecond. Otherwise ``__REALTIME_TIMESTAMP`` converted with the offset.
    """
    msg = record.get("MESSAGE")
    if isinstance(msg, list):  # journald sends non-UTF-8 messages as a byte array
        text = bytes(int(b) & 0xFF for b in msg).decode("utf-8", "replace")
    elif msg is None:
        text = ""
    else:
        text = str(msg)
    text = text.rstrip("\n")
    realtime_us = _int_or_none(record.get("__REALTIME_TIMESTAMP"))
    parsed = parse_line(text, reference_ns=realtime_us * 1000 if realtime_us else None, tz=tz)
    pid = _int_or_none(record.get("_PID"))
    ident = record.get("SYSLOG_IDENTIFIER")
    if pid is not None or (ident and not parsed.component):
        parsed = dataclasses.replace(
            parsed, component=parsed.component or (str(ident) if ident else None),
            pid=pid if pid is not None else parsed.pid,
        )
    mono_us = _int_or_none(record.get("__MONOTONIC_TIMESTAMP"))
    rec_boot = host.journal_boot_id(str(record.get("_BOOT_ID", "")))
    if mono_us is not None and rec_boot and rec_boot == host.journal_boot_id(boot_id):
        return text, parsed, mono_us * 1000, "journal-monotonic"
    if realtime_us is not None:
        return text, parsed, realtime_us * 1000 - offset_ns, "journal-realtime"
    if parsed.realtime_ns is not None:
        return text, parsed, parsed.realtime_ns - offset_ns, "line-realtime"
    return text, parsed, None, "none"


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


class JournalSource(_ThreadedLogSource):
    """Follows journald for one unit (`journalctl -u UNIT -o json -f`), rows on the trace clock."""

    def __init__(self, unit: str, *, command: Sequence[str] | None = None,
                 realtime_offset_ns: int | None = None) -> None:
        super().__init__(f"journal:{unit}", realtime_offset_ns=realtime_offset_ns)
        self.unit = unit
        self._command = list(command) if command is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._boot_id = host.boot_id("journal")

    def start(self) -> None:
        if self._offset is None:
            self._offset = realtime_offset_ns()
        cmd = self._command
        if cmd is None:
            # --since the start second (not "now", which journalctl evaluates only once it has
            # started): a line the unit logs while journalctl is still starting is not lost.
            since = f"@{time.time_ns() // 1_000_000_000}"
            cmd = ["journalctl", "-u", self.unit, "-o", "json", "-f", "--lines=all",
                   "--no-pager", "--since", since]
        try:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          stdin=subprocess.DEVNULL)
        except OSError as e:
            self.problem = f"cannot run {cmd[0]}: {e.strerror}"
            return
        self._start_thread(self._run, f"k3sprof-journal-{self.unit}")

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # let journalctl hand over what it already read, then end it
            time.sleep(0.2)
            proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(3)

    def _run(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        offset = self._offset or 0
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                text = line.decode("utf-8", "replace").rstrip("\n")
                self._add(text, parse_line(text), time.monotonic_ns(), "arrival")
                continue
            if not isinstance(record, dict):
                continue
            raw, parsed, ts, time_from = journal_row(record, boot_id=self._boot_id,
                                                     offset_ns=offset)
            self._add(raw, parsed, ts, time_from)
        rc = proc.wait()
        if rc not in (0, -15) and not self._stop.is_set() and proc.stderr is not None:
            err = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
            self.problem = f"journalctl exited {rc}: {err[-1] if err else 'no message'}"
