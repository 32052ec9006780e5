"""Stop time: SIGINT -> the recorder exits, and -> its last program detached (issue 24's goal:
<= 0.5 s to the last detach).

    sudo .venv/bin/python -m bench.stop [--runs 5] [-- EXTRA RECORD ARGS...]

The recorder exits once its trace is written; a forked child (comm k3sprof-detach) closes
the perf events, each tracepoint's last close waiting for an RCU grace period in the kernel
(probes.Attached.detach). "Detached" is when that child is gone AND no program the recorder
loaded is still in the kernel: the recorder's program ids (meta.json `programs`) are looked
for in every process's /proc/PID/fdinfo every 2 ms (an attached program is held by its perf
event or link, whose holder is the child).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import Recorder, _detach_children, load_avg, log, summary


def _held_prog_ids() -> set[int]:
    ids: set[int] = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for f in (d / "fdinfo").iterdir():
                text = f.read_text()
                if "prog_id:" in text:
                    for line in text.splitlines():
                        if line.startswith("prog_id:"):
                            ids.add(int(line.split(":", 1)[1]))
        except OSError:
            continue
    return ids


def one(out: Path, extra: list[str]) -> tuple[float, float]:
    rec = Recorder.start(out, *extra)
    time.sleep(1.0)
    progs = {int(i) for i in json.loads((out / "meta.json").read_text())["programs"].values()}
    t0 = time.monotonic()
    rec.proc.send_signal(signal.SIGINT)
    rec.proc.wait(60)
    exit_s = time.monotonic() - t0
    while _detach_children() or progs & _held_prog_ids():
        if time.monotonic() - t0 > 30:
            raise RuntimeError("programs still attached 30 s after SIGINT")
        time.sleep(0.002)
    return exit_s, time.monotonic() - t0


def measure(runs: int = 5, extra: Sequence[str] = ()) -> dict[str, Any]:
    """{exit_s, last_detach_s: summaries, extra} over `runs` idle default recordings."""
    exits, detached = [], []
    with tempfile.TemporaryDirectory(prefix="k3sprof-bench-stop-") as tmp:
        for i in range(runs):
            e, d = one(Path(tmp) / f"t{i}", list(extra))
            exits.append(e)
            detached.append(d)
            log(f"run {i}: exit {e:.3f}s, last detach {d:.3f}s, load {load_avg()}")
    return {"exit_s": summary(exits), "last_detach_s": summary(detached), "extra": list(extra)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("extra", nargs="*", help="extra `record` arguments (after --)")
    a = ap.parse_args(argv)
    res = measure(a.runs, a.extra)
    print(json.dumps(res))
    x, d_ = res["exit_s"], res["last_detach_s"]
    print(f"stop: SIGINT -> exit {x['median']:.3f}s ({x['min']:.3f}-{x['max']:.3f}, "
          f"n={x['n']}); -> last detach {d_['median']:.3f}s ({d_['min']:.3f}-"
          f"{d_['max']:.3f}, n={d_['n']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
