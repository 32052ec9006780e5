"""Log lines on the trace clock: parsing, command output, journald, and files captured elsewhere.

Formats recognised by :func:`parse_line` (a real k3s journal interleaves most of them):

* logrus text, as k3s and containerd print it when not on a terminal:
  ``time="2025-03-21T10:11:12.123456789Z" level=info msg="Starting k3s v1.32.4+k3s1" k=v``
* logrus on a terminal: ``INFO[0000] msg`` / ``INFO[2025-03-21T10:11:12Z] msg``
* klog (kube-apiserver, kubelet, flannel, ...): ``I0321 10:11:12.123456    1234 server.go:656] msg``
  (no year and local time: both are taken from a reference time)
* JSON lines: zap (etcd 3.5, k3s's etcd) ``{"level":"info","ts":"2025-...",
  "caller":"embed/etcd.go:117","msg":"..."}`` with ISO or numeric (epoch seconds) ``ts``, and
  logrus' JSON formatter
* capnslog (etcd 3.4's default):
  ``2025-03-21 10:11:12.123456 I | embed: ready to serve client requests``
* Go's standard log: ``2025/03/21 10:11:12 msg``; Go runtime ``panic: ...`` / ``fatal error: ...``
* each optionally behind a journald prefix: short ``Mar 21 10:11:12 host k3s[1234]: ``,
  short-precise (``10:11:12.123456``) or short-iso (``2025-03-21T10:11:12+0000``).

Anything else is kept as a raw row (level null); never dropped. Continuation lines (a Go panic's
goroutine dump, indented stack frames, wrapped messages) are marked and take the level, component
and pid of the entry they continue.

Every row is one physical line; ``ts_ns`` is CLOCK_MONOTONIC. ``time_from`` says where the time
came from: ``arrival`` (stamped when the line reached the recorder), ``journal-monotonic``
(journald's own monotonic stamp, same boot: exact), ``journal-realtime`` and ``line-realtime``
(a wall-clock stamp converted with the trace's realtime offset), ``previous-line`` / ``next-line``
(a line with no time of its own, e.g. a stack frame, placed at its neighbour's time) and ``none``.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from tracer import schema
from tracer._errors import TraceError, UsageError

# ---------------------------------------------------------------------------------------------
# Parsing one line
# ---------------------------------------------------------------------------------------------

_LEVELS = {
    "trace": "trace", "trac": "trace",
    "debug": "debug", "debu": "debug", "dbug": "debug",
    "info": "info", "information": "info", "notice": "info",
    "warn": "warn", "warning": "warn",
    "error": "error", "erro": "error", "err": "error",
    "fatal": "fatal", "fata": "fatal", "critical": "fatal", "crit": "fatal",
    "panic": "panic", "pani": "panic", "dpanic": "panic",
}  # fmt: skip
#: klog / capnslog severity letters
_LETTER_LEVELS = {"D": "debug", "I": "info", "N": "info", "W": "warn", "E": "error",
                  "C": "fatal", "F": "fatal"}  # fmt: skip
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s?(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_JOURNAL_PREFIX = re.compile(
    r"(?:(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<hms>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})))"
    r" (?P<host>\S+) (?P<ident>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<rest>.*)$",
    re.DOTALL,
)
_LOGRUS_KV = re.compile(r'([A-Za-z_][\w.\-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_LOGRUS_TTY = re.compile(r"(INFO|WARN|ERRO|DEBU|TRAC|FATA|PANI)\[([^\]]*)\]\s?(.*)$", re.DOTALL)
_KLOG = re.compile(
    r"([IWEF])(\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})\s+(\d+) ([^\s:\]]+):(\d+)\] ?(.*)$",
    re.DOTALL,
)
_CAPNSLOG = re.compile(
    r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{1,9}) ([DINWECF]) \| (?:([\w./-]+): )?(.*)$",
    re.DOTALL,
)
_GOLOG = re.compile(
    r"(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? (.*)$", re.DOTALL
)
_GO_PANIC = re.compile(r"(panic|fatal error): ")
# Lines that only make sense as the tail of the entry before them: a Go goroutine dump
# ("goroutine 1 [running]:", "main.main()", "\t/src/main.go:10 +0x1d", "created by ..."),
# indented detail lines, and blank separators.
_CONTINUATION = re.compile(
    r"(?:[ \t]|$|goroutine \d+ \[|created by |\[signal |exit status \d+$"
    r"|[\w.\-/]+(?:\.\(\*?[\w.\-\[\]]+\))?\.[\w.\-\[\]]+\(.*\)$|\.\.\.additional frames elided)"
)


@dataclass(frozen=True)
class ParsedLine:
    """What one log line says; fields the line does not carry are None."""

    message: str
    level: str | None = None
    component: str | None = None
    pid: int | None = None
    #: the line's own wall-clock time (ns since the epoch), if it has one
    realtime_ns: int | None = None
    #: "logrus" | "logrus-tty" | "klog" | "json" | "capnslog" | "golog" | "go-panic" | "raw"
    format: str = "raw"
    #: the line continues the entry before it (stack frame, goroutine dump, indented detail)
    continuation: bool = False


def parse_line(
    text: str, *, reference_ns: int | None = None, tz: tzinfo | None = None
) -> ParsedLine:
    """Parse one log line (without its newline).

    reference_ns (wall clock, ns) supplies the year for formats that have none (klog, journald
    short); it defaults to now. Times without a zone are local time, or ``tz`` when given.
    """
    line = text.rstrip("\r\n")
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    ident = None
    ident_pid = None
    prefix_ns = None
    m = _JOURNAL_PREFIX.match(line)
    if m:
        ident = m["ident"]
        ident_pid = int(m["pid"]) if m["pid"] else None
        if m["iso"]:
            prefix_ns = _parse_iso(m["iso"], tz)
        else:
            hh, mm, ss = (int(x) for x in m["hms"].split(":"))
            prefix_ns = _yearless(_MONTHS.get(m["mon"], 0), int(m["day"]), hh, mm, ss,
                                  _frac_ns(m["frac"]), reference_ns, tz)
        line = m["rest"]
    body = _parse_body(line, reference_ns, tz)
    if m is None:
        return body
    return ParsedLine(
        message=body.message,
        level=body.level,
        component=body.component or ident,
        # journald's pid is the process's; klog's own field is a thread id at best
        pid=ident_pid if ident_pid is not None else body.pid,
        realtime_ns=body.realtime_ns if body.realtime_ns is not None else prefix_ns,
        format=body.format,
        continuation=body.continuation,
    )


def _parse_body(line: str, ref: int | None, tz: tzinfo | None) -> ParsedLine:
    if not line:
        return ParsedLine(message="", continuation=True)
    first = line[0]
    if first == "{":
        p = _parse_json(line, tz)
        if p is not None:
            return p
    if "level=" in line and "msg=" in line:
        p = _parse_logrus(line, tz)
        if p is not None:
            return p
    if first in "IWEF":
        km = _KLOG.match(line)
        if km:
            ts = _yearless(int(km[2]), int(km[3]), int(km[4]), int(km[5]), int(km[6]),
                           int(km[7]) * 1000, ref, tz)
            return ParsedLine(
                message=km[11], level=_LETTER_LEVELS[km[1]], component=_stem(km[9]),
                pid=int(km[8]), realtime_ns=ts, format="klog",
            )
    if first in "IWEDTFP":
        tm = _LOGRUS_TTY.match(line)
        if tm:
            stamp = tm[2]
            ts = _parse_iso(stamp, tz) if "-" in stamp else None
            return ParsedLine(message=tm[3], level=_LEVELS[tm[1].lower()], realtime_ns=ts,
                              format="logrus-tty")
    if first.isdigit():
        cm = _CAPNSLOG.match(line)
        if cm:
            return ParsedLine(message=cm[4], level=_LETTER_LEVELS[cm[2]], component=cm[3],
                              realtime_ns=_parse_iso(cm[1], tz), format="capnslog")
        gm = _GOLOG.match(line)
        if gm:
            y, mo, d, h, mi, s = (int(gm[i]) for i in range(1, 7))
            return ParsedLine(message=gm[8], realtime_ns=_wall_ns(y, mo, d, h, mi, s,
                              _frac_ns(gm[7]), tz), format="golog")
    pm = _GO_PANIC.match(line)
    if pm:
        return ParsedLine(message=line, level="panic" if pm[1] == "panic" else "fatal",
                          format="go-panic")
    if _CONTINUATION.match(line):
        return ParsedLine(message=line.strip(), continuation=True)
    return ParsedLine(message=line)


def _parse_json(line: str, tz: tzinfo | None) -> ParsedLine | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    msg = obj.get("msg", obj.get("message"))
    level = obj.get("level", obj.get("lvl", obj.get("severity")))
    if msg is None and level is None:
        return None
    ts_val = obj.get("ts", obj.get("time", obj.get("timestamp")))
    realtime = None
    if isinstance(ts_val, (int, float)) and not isinstance(ts_val, bool):
        realtime = _epoch_number_ns(float(ts_val))
    elif isinstance(ts_val, str):
        realtime = _parse_iso(ts_val, tz)
    component = obj.get("logger") or obj.get("component") or obj.get("module")
    caller = obj.get("caller")
    if not component and isinstance(caller, str):
        component = _caller_component(caller)
    pid = obj.get("pid")
    return ParsedLine(
        message=str(msg) if msg is not None else "",
        level=_LEVELS.get(str(level).lower()) if level is not None else None,
        component=str(component) if component else None,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        realtime_ns=realtime,
        format="json",
    )


def _parse_logrus(line: str, tz: tzinfo | None) -> ParsedLine | None:
    fields: dict[str, str] = {}
    pos = 0
    for m in _LOGRUS_KV.finditer(line):
        if line[pos : m.start()].strip():
            return None  # text between pairs: not a logrus line, just mentions level= and msg=
        fields.setdefault(m[1], _unquote(m[2]))
        pos = m.end()
    if "level" not in fields or "msg" not in fields or line[pos:].strip():
        return None
    realtime = _parse_iso(fields["time"], tz) if "time" in fields else None
    component = fields.get("component") or fields.get("logger") or fields.get("module")
    if not component:
        plugin_type = fields.get("type", "")
        # containerd names the plugin it is loading: type=io.containerd.snapshotter.v1
        if plugin_type.startswith("io.containerd."):
            component = plugin_type
    return ParsedLine(
        message=fields["msg"],
        level=_LEVELS.get(fields["level"].lower()),
        component=component or None,
        realtime_ns=realtime,
        format="logrus",
    )


def _unquote(value: str) -> str:
    if len(value) < 2 or value[0] != '"':
        return value
    try:
        out = json.loads(value)
        return out if isinstance(out, str) else value
    except ValueError:  # Go's %q may use \x.. escapes that JSON lacks
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def _stem(filename: str) -> str:
    return filename[:-3] if filename.endswith(".go") else filename


def _caller_component(caller: str) -> str:
    """'embed/etcd.go:117' -> 'embed' (the package, as capnslog names it); 'x.go:1' -> 'x'."""
    path = caller.rsplit(":", 1)[0]
    head, _, tail = path.rpartition("/")
    return head if head else _stem(tail)


def _frac_ns(frac: str | None) -> int:
    return int(frac.ljust(9, "0")[:9]) if frac else 0


def _parse_iso(text: str, tz: tzinfo | None) -> int | None:
    m = _ISO.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m[i]) for i in range(1, 7))
    frac = _frac_ns(m[7])
    zone = m[8]
    if zone is None:
        return _wall_ns(y, mo, d, h, mi, s, frac, tz)
    try:
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
        secs -= sign * off
    return secs * 1_000_000_000 + frac


def _wall_ns(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: int,
             tz: tzinfo | None) -> int | None:
    """A zone-less wall-clock time in tz (local time when None) -> ns since the epoch."""
    try:
        dt = datetime(y, mo, d, h, mi, min(s, 59))
        secs = int(dt.replace(tzinfo=tz).timestamp()) if tz else int(time.mktime(dt.timetuple()))
    except (ValueError, OverflowError):
        return None
    return secs * 1_000_000_000 + frac


def _yearless(mo: int, d: int, h: int, mi: int, s: int, frac: int, ref: int | None,
              tz: tzinfo | None) -> int | None:
    """A time without a year: the year that puts it nearest the reference (Dec/Jan safe)."""
    ref_ns = ref if ref is not None else time.time_ns()
    ref_year = datetime.fromtimestamp(ref_ns / 1e9, tz or timezone.utc).year
    best = None
    for year in (ref_year - 1, ref_year, ref_year + 1):
        t = _wall_ns(year, mo, d, h, mi, s, frac, tz)
        if t is not None and (best is None or abs(t - ref_ns) < abs(best - ref_ns)):
            best = t
    return best


def _epoch_number_ns(v: float) -> int:
    """zap's numeric ts is epoch seconds; tolerate ms/us/ns encoders by magnitude."""
    if v > 1e17:
        return int(v)
    if v > 1e14:
        return int(v * 1e3)
    if v > 1e11:
        return int(v * 1e6)
    return round(v * 1e6) * 1000  # float seconds carry ~us precision at today's epoch


def parse_timezone(text: str) -> tzinfo:
    """'UTC', '+01:00', '-0530' or an IANA name like 'Europe/Berlin' -> tzinfo (UsageError)."""
    if text.upper() in ("UTC", "Z"):
        return timezone.utc
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})?", text)
    if m:
        off = timedelta(hours=int(m[2]), minutes=int(m[3] or 0))
        return timezone(-off if m[1] == "-" else off)
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"unknown time zone {text!r}: use UTC, an offset like +01:00, "
            "or a name like Europe/Berlin"
        ) from None


# ---------------------------------------------------------------------------------------------
# Lines -> LOG rows
# ---------------------------------------------------------------------------------------------


class LogRows:
    """Accumulates LOG rows of one source; continuation lines inherit their entry's fields."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._cols: dict[str, list[Any]] = {n: [] for n in schema.LOG.names}
        self._entry: ParsedLine | None = None

    def __len__(self) -> int:
        return len(self._cols["raw"])

    def add(self, raw: str, parsed: ParsedLine, ts_ns: int | None, time_from: str) -> None:
        level, component, pid = parsed.level, parsed.component, parsed.pid
        if parsed.continuation and self._entry is not None:
            entry = self._entry
            level = level or entry.level
            component = component or entry.component
            pid = pid if pid is not None else entry.pid
        elif not parsed.continuation:
            self._entry = parsed
        c = self._cols
        c["ts_ns"].append(ts_ns if ts_ns is None or ts_ns >= 0 else None)
        c["source"].append(self.source)
        c["level"].append(level)
        c["component"].append(component)
        c["message"].append(parsed.message)
        c["pid"].append(pid)
        c["raw"].append(raw)
        c["time_from"].append(time_from)

    def take(self) -> pa.Table | None:
        """The rows added since the last take (None if none)."""
        if not self._cols["raw"]:
            return None
        cols, self._cols = self._cols, {n: [] for n in schema.LOG.names}
        return pa.Table.from_pydict(cols, schema=schema.LOG)


def realtime_offset_ns() -> int:
    """realtime - monotonic now (what the recorder stores as meta realtime_offset_ns)."""
    a = time.monotonic_ns()
    r = time.time_ns()
    b = time.monotonic_ns()
    return r - (a + b) // 2


# ---------------------------------------------------------------------------------------------
# Live sources (the recorder drives them through tracer.context.ContextSource)
# ---------------------------------------------------------------------------------------------

#: a line longer than this is cut into several rows (nothing is dropped) so memory stays bounded
MAX_LINE_BYTES = 64 * 1024


class _ThreadedLogSource:
    table = "log"

    def __init__(self, source: str) -> None:
        self._rows = LogRows(source)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: why the source produced nothing, if it failed (for the trace metadata)
        self.problem: str | None = None

    def _add(self, raw: str, parsed: ParsedLine, ts_ns: int | None, time_from: str) -> None:
        with self._lock:
            self._rows.add(raw, parsed, ts_ns, time_from)

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
    """

    def __init__(self, stream: IO[bytes] | int, name: str,
                 passthrough: IO[bytes] | int | bool | None = True) -> None:
        super().__init__(name)
        self._fd = stream if isinstance(stream, int) else stream.fileno()
        if passthrough is True:
            passthrough = sys.stderr.buffer if name == "stderr" else sys.stdout.buffer
        self._out: IO[bytes] | int | None = passthrough or None
        #: the time stop() was called: reading continues briefly so nothing in the pipe is lost
        self.stop_grace_s = 1.0

    def start(self) -> None:
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


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "").lower()
    except OSError:
        return ""


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
        parsed = ParsedLine(
            message=parsed.message, level=parsed.level,
            component=parsed.component or (str(ident) if ident else None),
            pid=pid if pid is not None else parsed.pid, realtime_ns=parsed.realtime_ns,
            format=parsed.format, continuation=parsed.continuation,
        )
    mono_us = _int_or_none(record.get("__MONOTONIC_TIMESTAMP"))
    rec_boot = str(record.get("_BOOT_ID", "")).replace("-", "").lower()
    if mono_us is not None and rec_boot and rec_boot == boot_id:
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
        super().__init__(f"journal:{unit}")
        self.unit = unit
        self._command = list(command) if command is not None else None
        self._offset = realtime_offset_ns
        self._proc: subprocess.Popen[bytes] | None = None
        self._boot_id = _boot_id()

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


# ---------------------------------------------------------------------------------------------
# Files captured elsewhere: `k3sprof ingest-log`
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    source: str
    rows: int  # lines added (one row per line; none dropped)
    own_time: int  # lines with a timestamp of their own
    neighbour_time: int  # lines placed at a neighbouring line's time
    no_time: int  # lines with no time at all (the file had no timestamps), or before boot
    unparsed: int  # lines in no known format (kept raw, level null)
    replaced: int  # rows of the same source from an earlier ingest, replaced


def rows_from_lines(lines: Iterable[str], source: str, *, offset_ns: int, reference_ns: int,
                    tz: tzinfo | None = None) -> tuple[pa.Table, IngestResult]:
    """Parse lines captured elsewhere into LOG rows aligned via their own wall-clock times.

    A line with no time of its own (a stack frame, an unknown line) takes the time of the line
    before it, or of the next timed line when it comes first.
    """
    rows = LogRows(source)
    own = neighbour = unparsed = 0
    last_ts: int | None = None
    waiting: list[tuple[str, ParsedLine]] = []  # untimed lines before the first timed one
    for text in lines:
        raw = text.rstrip("\r\n")
        p = parse_line(raw, reference_ns=reference_ns, tz=tz)
        if p.format == "raw" and not p.continuation:
            unparsed += 1
        if p.realtime_ns is not None:
            ts = p.realtime_ns - offset_ns
            for w_raw, w_p in waiting:
                rows.add(w_raw, w_p, ts, "next-line")
            neighbour += len(waiting)
            waiting.clear()
            rows.add(raw, p, ts, "line-realtime")
            own += 1
            last_ts = ts
        elif last_ts is not None:
            rows.add(raw, p, last_ts, "previous-line")
            neighbour += 1
        else:
            waiting.append((raw, p))
    for w_raw, w_p in waiting:
        rows.add(w_raw, w_p, None, "none")
    table = rows.take() or schema.LOG.empty_table()
    no_time = table.num_rows - pc.count(table["ts_ns"]).as_py()  # incl. times before boot
    return table, IngestResult(source, table.num_rows, own, neighbour, no_time, unparsed, 0)


def _read_lines(file: Path) -> Iterator[str]:
    opener: Any = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8", errors="replace", newline=None) as f:
        yield from f


def ingest(trace_dir: str | os.PathLike[str], file: str | os.PathLike[str],
           source: str | None = None, *, tz: tzinfo | None = None) -> IngestResult:
    """Append a log captured elsewhere to a trace's ``log`` table, aligned via its timestamps.

    The table is rewritten whole (existing rows + new rows, ordered by time) to a temporary file
    renamed over ``log.arrows``, so a crash leaves either the old or the new table. Rows from an
    earlier ingest with the same source are replaced (ingesting twice does not double them).
    Run it on a finished trace: a recorder still writing ``log.arrows`` would lose its rows.
    """
    d = Path(trace_dir)
    f = Path(file)
    meta = schema.read_meta(d)
    if not f.exists():
        raise UsageError(f"{f}: no such file")
    if f.is_dir():
        raise UsageError(f"{f}: is a directory, expected a log file")
    offset = meta.get("realtime_offset_ns")
    if not isinstance(offset, int):
        raise TraceError(f"{d}: trace has no realtime_offset_ns in {schema.META_FILE}; "
                         "cannot align wall-clock log times to it")
    src = f"file:{source or f.name}"
    reference = int(meta.get("start_ns", 0)) + offset
    try:
        new, result = rows_from_lines(_read_lines(f), src, offset_ns=offset,
                                      reference_ns=reference, tz=tz)
    except PermissionError:
        raise UsageError(f"{f}: permission denied") from None
    except (OSError, EOFError) as e:
        raise UsageError(f"{f}: cannot read ({e})") from None

    target = d / ("log" + schema.TABLE_SUFFIX)
    replaced = 0
    parts = []
    if target.exists():
        old, _note = schema.read_table(target, schema.LOG)
        keep = pc.not_equal(old["source"], src)
        keep = pc.fill_null(keep, True)
        replaced = old.num_rows - pc.sum(keep.cast(pa.int64())).as_py() if old.num_rows else 0
        parts.append(old.filter(keep))
    parts.append(new)
    merged = pa.concat_tables(parts)
    order = pc.sort_indices(merged, sort_keys=[("ts_ns", "ascending")])  # stable; nulls last
    merged = merged.take(order)

    tmp = d / ("log" + schema.TABLE_SUFFIX + ".tmp")
    writer = schema.StreamWriter(tmp, schema.LOG)
    try:
        writer.write(merged)
    finally:
        writer.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    with contextlib.suppress(OSError):
        meta.setdefault("ingested_logs", []).append(
            {"source": src, "file": str(f), "rows": result.rows})
        schema.write_meta(d, meta)
    return IngestResult(result.source, result.rows, result.own_time, result.neighbour_time,
                        result.no_time, result.unparsed, replaced)
