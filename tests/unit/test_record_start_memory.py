"""The recorder puts Arrow's C++ default allocator on malloc without leaving the choice in the
environment its recorded command inherits (tracer/collector/start.py: _arrow_on_malloc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_PROBE = """
import json, os, subprocess, sys
from tracer.collector import start
start._arrow_on_malloc()
import pyarrow as pa
child = subprocess.run([sys.executable, "-c",
                        "import os; print(os.environ.get('ARROW_DEFAULT_MEMORY_POOL'))"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(json.dumps({"backend": pa.default_memory_pool().backend_name,
                  "env": os.environ.get("ARROW_DEFAULT_MEMORY_POOL"), "child": child}))
"""


def _run(env_pool: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env_pool:
        env["ARROW_DEFAULT_MEMORY_POOL"] = env_pool
    p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                       timeout=120, check=True, env=env)
    return dict(json.loads(p.stdout))


def test_arrow_default_pool_is_malloc_and_the_variable_is_gone() -> None:
    plain = subprocess.run([sys.executable, "-c", "import pyarrow as pa; "
                            "print(pa.default_memory_pool().backend_name)"],
                           capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items()
                                if k != "ARROW_DEFAULT_MEMORY_POOL"}).stdout.strip()
    got = _run(None)
    assert got["backend"] == "system", (got, plain)  # pyarrow's own default here: plain
    assert got["env"] is None and got["child"] == "None"


def test_a_users_choice_is_kept() -> None:
    got = _run("mimalloc")
    assert got["backend"] == "mimalloc"
    assert got["env"] == "mimalloc" and got["child"] == "mimalloc"
