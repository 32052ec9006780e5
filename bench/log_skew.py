"""How far a log line announcing a listener is from the BPF listen it announces, by the time the
recorder received the line (arrival) and by the line's own stamp (converted to CLOCK_MONOTONIC).

    sudo .venv/bin/python -m bench.log_skew [--runs 7]   (under flock /tmp/k3sprof-itest.lock)

Records real etcd 3.4 (capnslog, microsecond stamps: "advertise client URLs = URL" is printed
right after the client listener is created) and containerd 1.6 (logrus, nanosecond stamps:
"serving..." address=SOCKET per listener) with `k3sprof record --until log:READY -- DAEMON`,
then for every announcing line: skew = line time - listen row's ts_ns. Also "ready line - last
announced listen" (a real delay in the daemon, not an error) for the integration test's bound.
Prints one markdown table: median (min-max, n) in microseconds, and the JSON with every value.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.integration import daemons
from tracer import schema


def _listen_ts(trace: schema.Trace, pid: int, endpoint: str) -> int | None:
    ts = [r["ts_ns"] for r in trace.table("socket").to_pylist()
          if r["kind"] == "listen" and r["pid"] == pid and r["endpoint"] == endpoint
          and r["ret"] == 0]
    return min(ts) if ts else None


def measure(trace: schema.Trace, d: daemons.Daemon) -> dict[str, list[int]]:
    """Skews (ns) of one recorded trace: per announcing line, arrival and own."""
    pid = trace.meta["command_pid"]
    rows = trace.table("log").to_pylist()
    out: dict[str, list[int]] = {"arrival": [], "own": [], "own_used": [], "ready_after": [],
                                 "delay": []}
    listens = []
    for regex, endpoint in d.announces:
        listen = _listen_ts(trace, pid, endpoint)
        line = next((r for r in rows if re.search(regex, r["raw"])), None)
        if listen is None or line is None:
            raise RuntimeError(f"no listen on {endpoint} or no line /{regex}/ in {trace.path}")
        listens.append(listen)
        out["arrival"].append(line["received_ns"] - listen)
        own = own_ns(line, trace)
        out["own"].append(own - listen)
        out["own_used"].append(int(line["time_from"] == "line-realtime"))
    # every line with a sub-ms stamp: receipt - own stamp (what OWN_TIME_MAX_EARLY_NS bounds)
    for r in rows:
        if r["received_ns"] is not None and r["source"] in ("stdout", "stderr"):
            p = _parse(r, trace)
            if p.realtime_ns is not None and p.resolution_ns is not None and \
                    p.resolution_ns < 1_000_000:
                out["delay"].append(r["received_ns"] - (p.realtime_ns - _offset(trace)))
    ready = next(r for r in rows if re.search(d.ready, r["message"] or ""))
    out["ready_after"].append(ready["ts_ns"] - max(listens))
    return out


def _offset(trace: schema.Trace) -> int:
    return int(trace.meta["realtime_offset_ns"])


def _parse(row: dict[str, Any], trace: schema.Trace) -> Any:
    from tracer.context.logs import parse_line

    return parse_line(row["raw"], reference_ns=trace.meta["start_ns"] + _offset(trace))


def own_ns(row: dict[str, Any], trace: schema.Trace) -> int:
    p = _parse(row, trace)
    assert p.realtime_ns is not None
    return int(p.realtime_ns) - _offset(trace)


def _fmt(vals: list[int]) -> str:
    us = [v / 1000 for v in vals]
    return f"{statistics.median(us):.0f} ({min(us):.0f} to {max(us):.0f}, n={len(us)})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    results: dict[str, dict[str, list[int]]] = {}
    with tempfile.TemporaryDirectory(prefix="k3sprof-logskew-") as tmp:
        for i in range(args.runs):
            for name in ("etcd", "containerd"):
                work = Path(tmp) / f"{name}{i}"
                work.mkdir()
                d = getattr(daemons, name)(work)
                if d is None:
                    print(f"{name} not installed", file=sys.stderr)
                    return 1
                out = work / "trace"
                subprocess.run([sys.executable, "-m", "tracer", "record", "-o", str(out),
                                "--until", f"log:{d.ready}", "--", *d.command],
                               check=True, capture_output=True, timeout=120)
                m = measure(schema.load(out), d)
                acc = results.setdefault(name, {})
                for k, v in m.items():
                    acc.setdefault(k, []).extend(v)
    print(f"log line vs BPF listen, {time.strftime('%Y-%m-%d')}, {platform.node()} "
          f"({platform.machine()}, kernel {platform.release()}), {args.runs} runs each; "
          "microseconds, median (min to max, n); positive = line after listen")
    print("| daemon | by arrival | by own stamp | own stamp used | ready line after last listen "
          "| receipt - own stamp, every sub-ms line |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {_fmt(r['arrival'])} | {_fmt(r['own'])} | "
              f"{sum(r['own_used'])}/{len(r['own_used'])} | {_fmt(r['ready_after'])} | "
              f"{_fmt(r['delay'])} |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
