"""bench.collector_profile's readers, on this process (no root, no BPF)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench.collector_profile import sched_counters, top_functions


def test_sched_counters_sum_every_thread_and_grow_with_work() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        before = sched_counters(os.getpid())
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:  # some CPU
            pass
        time.sleep(0.01)  # a voluntary switch
        after = sched_counters(os.getpid())
    finally:
        stop.set()
        t.join()
    assert after["run_ns"] - before["run_ns"] >= 40_000_000
    assert after["voluntary_ctxt_switches"] > before["voluntary_ctxt_switches"]
    assert after["timeslices"] >= before["timeslices"] + 1


def test_top_functions_ranks_the_frame_on_top_of_each_stack(tmp_path: Path) -> None:
    raw = tmp_path / "spy.raw"
    raw.write_text("main (a.py:1);loop (a.py:5);consume (r.py:9) 30\n"
                   "main (a.py:1);loop (a.py:5) 10\n"
                   "main (a.py:1);feed (b.py:2);consume (r.py:9) 10\n")
    assert top_functions(raw) == [("consume (r.py:9)", 80.0), ("loop (a.py:5)", 20.0)]
