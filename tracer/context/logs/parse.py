"""Parsing one log line: which format, level, component, pid and wall-clock time it carries.

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
"""

from __future__ import annotations

import calendar
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

from tracer._errors import UsageError

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
    #: the step of that time as written (1_000 for microseconds, 1_000_000 for milliseconds):
    #: only a sub-millisecond stamp is finer than our own arrival stamp (rows.own_time_ns)
    resolution_ns: int | None = None
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
    prefix_res = None
    m = _JOURNAL_PREFIX.match(line)
    if m:
        ident = m["ident"]
        ident_pid = int(m["pid"]) if m["pid"] else None
        if m["iso"]:
            prefix_ns, prefix_res = _parse_iso_res(m["iso"], tz)
        else:
            prefix_res = _resolution(m["frac"])
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
        resolution_ns=body.resolution_ns if body.realtime_ns is not None else prefix_res,
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
                pid=int(km[8]), realtime_ns=ts, resolution_ns=1_000, format="klog",
            )
    if first in "IWEDTFP":
        tm = _LOGRUS_TTY.match(line)
        if tm:
            stamp = tm[2]
            ts, res = _parse_iso_res(stamp, tz) if "-" in stamp else (None, None)
            return ParsedLine(message=tm[3], level=_LEVELS[tm[1].lower()], realtime_ns=ts,
                              resolution_ns=res, format="logrus-tty")
    if first.isdigit():
        cm = _CAPNSLOG.match(line)
        if cm:
            ts, res = _parse_iso_res(cm[1], tz)
            return ParsedLine(message=cm[4], level=_LETTER_LEVELS[cm[2]], component=cm[3],
                              realtime_ns=ts, resolution_ns=res, format="capnslog")
        gm = _GOLOG.match(line)
        if gm:
            y, mo, d, h, mi, s = (int(gm[i]) for i in range(1, 7))
            return ParsedLine(message=gm[8], realtime_ns=_wall_ns(y, mo, d, h, mi, s,
                              _frac_ns(gm[7]), tz), resolution_ns=_resolution(gm[7]),
                              format="golog")
    pm = _GO_PANIC.match(line)
    if pm:
        return ParsedLine(message=line, level="panic" if pm[1] == "panic" else "fatal",
                          format="go-panic")
    if _CONTINUATION.match(line):
        return ParsedLine(message=line.strip(), continuation=True)
    return ParsedLine(message=line)


def _parse_json(line: str, tz: tzinfo | None) -> ParsedLine | None:
    try:
        # Decimal keeps a numeric ts as written: its digits are its resolution
        obj = json.loads(line, parse_float=Decimal)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    msg = obj.get("msg", obj.get("message"))
    level = obj.get("level", obj.get("lvl", obj.get("severity")))
    if msg is None and level is None:
        return None
    ts_val = obj.get("ts", obj.get("time", obj.get("timestamp")))
    realtime = resolution = None
    if isinstance(ts_val, (int, Decimal)) and not isinstance(ts_val, bool):
        if Decimal(-(10**19)) < Decimal(ts_val) < Decimal(10**19):  # else not a time; no overflow
            realtime, resolution = _epoch_number_ns(ts_val)
    elif isinstance(ts_val, str):
        realtime, resolution = _parse_iso_res(ts_val, tz)
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
        resolution_ns=resolution,
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
    realtime, resolution = _parse_iso_res(fields["time"], tz) if "time" in fields else (None, None)
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
        resolution_ns=resolution,
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


def _resolution(frac: str | None) -> int:
    """The step of a time written with these fraction digits: '123456' -> 1_000 ns."""
    return 10 ** (9 - min(len(frac), 9)) if frac else 1_000_000_000


def _parse_iso_res(text: str, tz: tzinfo | None) -> tuple[int | None, int | None]:
    """(ns since the epoch, resolution in ns) of an ISO time, (None, None) when not one."""
    ns = _parse_iso(text, tz)
    if ns is None:
        return None, None
    m = _ISO.match(text.strip())
    return ns, _resolution(m[7] if m else None)


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
    ref_year = datetime.fromtimestamp(ref_ns / 1e9, tz or UTC).year
    best = None
    for year in (ref_year - 1, ref_year, ref_year + 1):
        t = _wall_ns(year, mo, d, h, mi, s, frac, tz)
        if t is not None and (best is None or abs(t - ref_ns) < abs(best - ref_ns)):
            best = t
    return best


def _epoch_number_ns(v: int | Decimal) -> tuple[int, int]:
    """zap's numeric ts is epoch seconds (``1742551872.1234567``); tolerate ms/us/ns encoders by
    magnitude. Returns (ns, resolution ns): the digits written after the point are the step,
    but never finer than 1 us for seconds (a float64 of today's epoch keeps ~0.2 us)."""
    d = Decimal(v)
    exp = d.as_tuple().exponent
    places = -exp if isinstance(exp, int) and exp < 0 else 0
    for unit_ns, magnitude in ((1, Decimal("1e17")), (1_000, Decimal("1e14")),
                               (1_000_000, Decimal("1e11"))):
        if d > magnitude:
            return int(d * unit_ns), max(1, unit_ns // 10**places)
    resolution = max(1_000, 1_000_000_000 // 10**places)
    return int(d * 1_000_000_000) // resolution * resolution, resolution


def parse_timezone(text: str) -> tzinfo:
    """'UTC', '+01:00', '-0530' or an IANA name like 'Europe/Berlin' -> tzinfo (UsageError)."""
    if text.upper() in ("UTC", "Z"):
        return UTC
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
