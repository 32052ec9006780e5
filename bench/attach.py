"""Attach latency: `k3sprof record` start -> `recording` line, and -> first event recorded.

    sudo .venv/bin/python -m bench.attach [--runs 5]

While the recorder starts, this process connects to a missing unix path every millisecond,
each attempt naming its own send time in the path. The first of them in the trace is the
moment the probes were really live (1 ms resolution), independent of when the recorder
says so. The breakdown comes from the trace's meta.json (`attach_s`: start of
collector/start.py's go_live -> last probe attached; `compile_s`: BCC compile + load + attach)
and from timing the interpreter
and the CLI's imports alone; `stop_s` is SIGINT -> recorder exited; `peak_rss_mb` the
recorder's own VmHWM in MiB (ru_maxrss would carry the bench's peak over fork+exec). Each
run is done twice with its own bytecode cache directory: "cold"
(empty: BCC compiles, then fills it) and "warm" (loaded from it, no bcc import); the
headline figures are the warm ones, the cold ones are reported beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import K3SPROF, TREE, Recorder, load_avg, log, summary


def _prober(tag: str, stop: threading.Event) -> None:
    s = socket.socket(socket.AF_UNIX)
    while not stop.is_set():
        with contextlib.suppress(OSError):
            s.connect(f"/nonexistent/k3sprof-attach-{tag}-{time.monotonic_ns()}")
        time.sleep(0.001)
    s.close()


def one_run(tmp: Path, i: int, cache_dir: Path | None = None) -> dict[str, Any]:
    import pyarrow.compute as pc

    from tracer import schema

    tag = f"{os.getpid()}-{i}"
    stop = threading.Event()
    probe = threading.Thread(target=_prober, args=(tag, stop), daemon=True)
    probe.start()
    trace = tmp / f"attach{i}.trace"
    try:
        env = {"K3SPROF_BPF_CACHE": str(cache_dir)} if cache_dir else None
        rec = Recorder.start(trace, env=env)
        time.sleep(0.3)
    finally:
        stop.set()
        probe.join()
    stop_s, _ = rec.stop()
    t = schema.load(trace)
    sock = t.table("socket")
    mine = sock.filter(pc.and_(pc.equal(sock["pid"], os.getpid()),
                               pc.starts_with(sock["addr"], f"/nonexistent/k3sprof-attach-{tag}-")))
    first_ns = pc.min(mine["ts_ns"]).as_py() if mine.num_rows else None
    meta = t.meta
    line_s = (rec.live_ns - rec.spawn_ns) / 1e9
    return {
        "line_s": line_s,
        "first_event_s": (first_ns - rec.spawn_ns) / 1e9 if first_ns else None,
        "attach_s": meta.get("attach_s"),
        "compile_s": meta.get("compile_s"),
        # the rest of spawn -> `recording` line: interpreter start, CLI imports and parsing before
        # the probes go live; the recorder's imports (pyarrow, numpy) and context sources after
        "before_run_s": line_s - float(meta.get("attach_s") or 0),
        "stop_s": stop_s,
        # VmHWM, not rusage.ru_maxrss: that one carries the bench's own peak across fork+exec
        "peak_rss_mb": rec.peak_rss_kb / 1024,
        "loaded_from": meta.get("bpf_loaded_from", "bcc"),
        "load": load_avg(),
    }


def _time_cmd(cmd: list[str], runs: int = 3) -> float:
    ts = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True, cwd=TREE)
        ts.append(time.monotonic() - t0)
    return float(summary(ts)["median"])


def measure(runs: int = 5) -> dict[str, Any]:
    log(f"attach: {runs} runs, load {load_avg()}")
    out: list[dict[str, Any]] = []
    cold: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-") as tmpd:
        for i in range(runs):
            # cold: an empty bytecode cache, so BCC compiles (the first recording on a
            # machine, or after a kernel/source change); warm: the cache is filled by then
            cache = Path(tmpd) / f"cache{i}"
            cache.mkdir(mode=0o700)
            for kind, cdir in (("cold", cache), ("warm", cache)):
                r = one_run(Path(tmpd), i, cdir)
                r["kind"] = kind
                (cold if kind == "cold" else out).append(r)
                log(f"  run {i} {kind} ({r['loaded_from']}): recording line {r['line_s']:.2f}s, "
                    f"first event {r['first_event_s'] or float('nan'):.2f}s (compile/load "
                    f"{r['compile_s']}s, before run {r['before_run_s']:.2f}s) stop "
                    f"{r['stop_s']:.2f}s, peak RSS {r['peak_rss_mb']:.0f} MB, load {r['load']}")
    keys = ("line_s", "first_event_s", "attach_s", "compile_s", "before_run_s", "stop_s",
            "peak_rss_mb")
    res: dict[str, Any] = {k: summary([r[k] for r in out if r[k] is not None]) for k in keys}
    res["cold"] = {k: summary([r[k] for r in cold if r[k] is not None]) for k in keys}
    res["warm_from_cache"] = sum(r["loaded_from"] == "cache" for r in out)
    res["python_start_s"] = _time_cmd([sys.executable, "-c", "pass"])
    res["cli_start_s"] = _time_cmd([*K3SPROF, "--version"])
    res["import_bcc_s"] = _time_cmd([sys.executable, "-c", "import bcc"])
    res["runs"] = cold + out
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    res = measure(args.runs)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
