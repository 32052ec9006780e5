"""Analyse many traces, each independently: in this process, a local process pool, or a Dask
cluster the user names (docs/runs.md, "On a cluster").

A trace that cannot be read or analysed is one :class:`Outcome` with its error, never an
exception that stops the others: the caller reports it by name and says the result is partial.
Workers return the analysis' JSON (plain data: an Analysis carries a closure for its event
views, which does not cross a process boundary, and the consumers here need no views).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracer._errors import TraceError, TracerError, UsageError
from tracer.analyzer import Analysis, Options
from tracer.schema import META_FILE


@dataclass
class Outcome:
    """One input: its name, its analysis (JSON form) or why there is none, and its identity."""

    path: str
    name: str
    analysis: dict[str, Any] | None
    error: str | None
    boot_id: str | None = None
    #: the exit status the error would have alone (3: unreadable trace, 2: bad option)
    exit_code: int = 0
    #: HOST:PID of the process that analysed it (a pool or cluster worker, or this one)
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    def raise_error(self) -> None:
        """Raise this input's error as the TracerError it was (one input, nothing else)."""
        err = TracerError(self.error or f"{self.path}: unreadable")
        err.exit_code = self.exit_code or TraceError.exit_code
        raise err

    def result(self) -> Analysis:
        assert self.analysis is not None
        return Analysis.from_json(self.analysis)


def discover(paths: Sequence[Path]) -> list[Path]:
    """The inputs a list of paths names: a trace directory, an ``analyze --json`` file, or a
    directory holding traces (any depth up to 3: the lab's <version>/<run>/trace layout), sorted.
    A directory with no trace in it is a UsageError (a typo must not compare zero runs)."""
    out: list[Path] = []
    for p in paths:
        if p.is_file() or (p / META_FILE).exists() or not p.is_dir():
            out.append(p)  # a missing path is kept: it is reported as that trace's error
            continue
        found = sorted(
            {m.parent for depth in ("*", "*/*", "*/*/*") for m in p.glob(f"{depth}/{META_FILE}")}
        )
        if not found:
            raise UsageError(f"{p}: no trace in this directory (a trace has {META_FILE})")
        out.extend(found)
    return out


def run_name(path: Path) -> str:
    """A run's name: its directory (the lab's run directory when the trace is <run>/trace)."""
    parts = path.resolve().parts if path.exists() else path.parts
    name = parts[-1] if parts else str(path)
    if name == "trace" and len(parts) > 1:
        name = parts[-2]
    return name.removesuffix(".json")


def analyze_one(path: str, options: Options) -> Outcome:
    """The analysis of one input (a worker's whole job; picklable arguments and result)."""
    from tracer.report._analysis import load_result

    p = Path(path)
    boot_id = None
    try:
        _, a = load_result(p, options)
        if p.is_dir():
            meta = json.loads((p / META_FILE).read_text())
            boot_id = str(meta["boot_id"]) if meta.get("boot_id") else None
    except TracerError as e:
        return Outcome(path, run_name(p), None, str(e), exit_code=e.exit_code)
    except Exception as e:  # one bad trace among many must not stop the rest
        return Outcome(path, run_name(p), None, f"{path}: cannot analyse ({type(e).__name__}: {e})",
                       exit_code=TraceError.exit_code)
    return Outcome(path, run_name(p), a.to_json(), None, boot_id)


def analyze_many(
    paths: Sequence[Path],
    options: Options,
    *,
    workers: int = 1,
    cluster: str | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Every input's Outcome, in input order: serially (workers=1), in a local process pool,
    or on the Dask cluster at ``cluster`` (``tcp://HOST:PORT``)."""
    options.check()
    if workers < 1:
        raise UsageError(f"--workers {workers}: must be at least 1")
    items = [str(p) for p in paths]
    if cluster:
        it = _on_dask(items, options, cluster)
    elif workers == 1 or len(items) <= 1:
        it = (analyze_one(x, options) for x in items)
    else:
        it = _on_pool(items, options, workers)
    out = []
    for o in it:
        if progress is not None:
            progress(o)
        out.append(o)
    return out


def _on_pool(items: list[str], options: Options, workers: int) -> Iterator[Outcome]:
    # chunks amortise the pickling round trip; small enough that workers stay balanced
    chunk = max(1, min(16, len(items) // (workers * 4)))
    with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
        yield from pool.map(analyze_one, items, [options] * len(items), chunksize=chunk)


def _on_dask(items: list[str], options: Options, address: str) -> Iterator[Outcome]:
    """Dask's ordinary client: one task per trace; the workers must see the same paths (a shared
    file system, or the same layout on every node)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover -- a dependency; a broken install says so
        raise TracerError("--cluster needs dask's distributed package") from None
    try:
        client = Client(address, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as e:
        raise TracerError(f"--cluster {address}: cannot reach the scheduler ({e})") from None
    with client:
        futures = client.map(analyze_one, items, options=options, pure=False)
        yield from client.gather(futures)  # type: ignore[no-untyped-call]


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover -- not Linux
        return max(1, os.cpu_count() or 1)
