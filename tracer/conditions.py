"""Conditions naming a moment in a trace: `record --until COND`, `analyze --start/--end COND`.

Syntax (one string):
  exec:NAME         first successful exec of NAME (basename of the file, or comm)
  exit:NAME         first exit of a process whose comm is NAME
  listen:PORT       first successful TCP listen on PORT;  listen:PATH  (a unix socket path)
  connect-ok:PORT   first connect to PORT whose real outcome is ok;  connect-ok:PATH  (unix)
  log:REGEX         first log line whose message matches REGEX (needs a log table), at its
                    ts_ns: the line's own sub-ms stamp where consistent with its arrival,
                    else its arrival (tracer.context.logs.rows.own_time_ns)
  link-up:IFNAME    first netlink link_new row for interface IFNAME with state "up"
  addr:IFNAME       first netlink addr_new row on interface IFNAME (it got an address)

The same matcher runs live on each decoded batch (record) and on whole tables (analyze).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracer._errors import UsageError

if TYPE_CHECKING:  # imported where used: `record --until` parses before the probes go live
    import pyarrow as pa

KINDS = ("exec", "exit", "listen", "connect-ok", "log", "link-up", "addr")
SYNTAX = (
    "exec:NAME, exit:NAME, listen:PORT|PATH, connect-ok:PORT|PATH, log:REGEX, "
    "link-up:IFNAME, addr:IFNAME"
)
IFNAME_LEN = 15  # the kernel's IFNAMSIZ - 1
COMM_LEN = 15  # the kernel's TASK_COMM_LEN - 1


@dataclass(frozen=True)
class Condition:
    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def port(self) -> int | None:
        return int(self.value) if self.value.isdigit() else None

    @property
    def tables(self) -> tuple[str, ...]:
        """The trace tables this condition reads."""
        return {
            "exec": ("process",),
            "exit": ("process",),
            "log": ("log",),
            "link-up": ("netlink",),
            "addr": ("netlink",),
        }.get(self.kind, ("socket",))


def parse(text: str) -> Condition:
    """Parse COND; a UsageError names the valid syntax."""
    kind, sep, value = text.partition(":")
    if not sep or kind not in KINDS or not value:
        raise UsageError(f"unknown condition {text!r}: expected one of {SYNTAX}")
    if kind in ("listen", "connect-ok") and not (
        (value.isdigit() and 0 < int(value) < 65536) or value.startswith(("/", "@"))
    ):
        raise UsageError(
                f"condition {text!r}: {kind} takes a TCP port (1-65535) or a unix socket path"
            )
    if kind == "log":
        try:
            re.compile(value)
        except re.error as e:
            raise UsageError(f"condition {text!r}: bad regular expression ({e})") from None
    if kind in ("link-up", "addr") and (
        len(value) > IFNAME_LEN or "/" in value or any(c.isspace() for c in value)
    ):
        raise UsageError(
            f"condition {text!r}: {kind} takes an interface name (at most {IFNAME_LEN} "
            "characters, no '/' or spaces)"
        )
    return Condition(kind, value)


def _unix_endpoint(value: str) -> str:
    return "unix:" + value


def match_mask(cond: Condition, tables: Mapping[str, pa.Table]) -> tuple[pa.Table, pa.Array]:
    """The table the condition reads and a boolean mask of its matching rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = cond.tables[0]
    t = tables.get(name)
    if t is None or t.num_rows == 0:
        empty = pa.table({"ts_ns": pa.array([], pa.uint64())})
        return empty, pa.array([], pa.bool_())
    if cond.kind in ("exec", "exit"):
        comm_eq = pc.equal(t["comm"], cond.value[:COMM_LEN])
        kind_eq = pc.equal(t["kind"], cond.kind)
        if cond.kind == "exec":
            base = pc.utf8_replace_slice(t["filename"], 0, 0, "")  # copy; nulls stay null
            base = pc.replace_substring_regex(base, r"^.*/", "")
            name_eq = pc.or_kleene(pc.equal(base, cond.value), comm_eq)
        else:
            name_eq = comm_eq
        mask = pc.and_kleene(kind_eq, name_eq)
    elif cond.kind in ("listen", "connect-ok"):
        kind_eq = pc.equal(t["kind"], "listen" if cond.kind == "listen" else "connect")
        if cond.port is not None:
            where = pc.equal(t["port"], cond.port)
        else:
            where = pc.equal(t["endpoint"], _unix_endpoint(cond.value))
        ok = pc.equal(t["ret"], 0) if cond.kind == "listen" else pc.equal(t["outcome"], "ok")
        mask = pc.and_kleene(pc.and_kleene(kind_eq, where), ok)
    elif cond.kind in ("link-up", "addr"):
        name_eq = pc.equal(t["ifname"], cond.value)
        if cond.kind == "link-up":
            mask = pc.and_kleene(
                pc.and_kleene(pc.equal(t["kind"], "link_new"), name_eq),
                pc.equal(t["state"], "up"),
            )
        else:
            mask = pc.and_kleene(pc.equal(t["kind"], "addr_new"), name_eq)
    else:  # log
        mask = pc.match_substring_regex(t["message"], cond.value)
    return t, pc.fill_null(mask, False)


def when(cond: Condition, tables: Mapping[str, pa.Table]) -> int | None:
    """CLOCK_MONOTONIC ns of the first row matching cond, or None."""
    import pyarrow.compute as pc

    t, mask = match_mask(cond, tables)
    if len(mask) == 0:
        return None
    hits = t.filter(mask)
    if hits.num_rows == 0:
        return None
    col = "outcome_ns" if cond.kind == "connect-ok" else "ts_ns"
    first = pc.min(hits[col]).as_py()
    return int(first) if first is not None else None
