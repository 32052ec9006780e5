"""Symbolisation speed: PCs per second on Debian's containerd, and 1M samples symbolised.

    .venv/bin/python -m bench.symbols [--rounds 5] [--samples 1000000] [--binary PATH]
    .venv/bin/python -m bench.symbols --agreement [--go /path/to/another/go ...]

--agreement prints, instead, how many PCs agree with `go tool addr2line`: the sets the tests
check (tests/unit/test_symbols_addr2line.py), with their counts.

No root needed. Each round starts cold (a fresh open of the binary, empty caches), as the
extract at record stop does.

1. PCs/s: every function entry of the binary's .gopclntab plus one PC inside each function
   (about 100k distinct PCs for containerd), resolved in one batch (BinarySymbols.resolve).
2. 1M samples: a trace of --samples on-CPU samples over a k3s-like shape (one Go process,
   20,000 distinct stacks of 10-40 frames drawn from 40,000 distinct return addresses in
   8,000 functions, stack popularity Zipf-like), symbolised as the collector does at stop:
   stack_pcs (deduplicate to distinct PCs) + extract (open, resolve, build the tables); then
   the reader names every distinct stack (StackNamer.frames). Goal (issue 23): <= 5 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracer import schema  # noqa: E402
from tracer.symbols import BinarySymbols, StackNamer, extract, identify, stack_pcs  # noqa: E402
from tracer.symbols.elf import ElfImage  # noqa: E402
from tracer.symbols.gopclntab import GoTable  # noqa: E402


def _fmt(xs: list[float], unit: str, digits: int = 2) -> str:
    return (
        f"{statistics.median(xs):.{digits}f} {unit} "
        f"({min(xs):.{digits}f}-{max(xs):.{digits}f}, n={len(xs)})"
    )


def _code_pcs(path: str, rnd: random.Random) -> tuple[list[int], list[tuple[int, int]], int]:
    """(entry and inside PCs as ELF addresses, function spans, ELF address -> file offset)."""
    with ElfImage(path) as img:
        t = GoTable.from_elf(img)
        spans = [t.function_span(i) for i in range(len(t.entries))]
        text = next(s for s in img.segments if s.flags & 1)
        delta = text.vaddr - text.offset
    pcs: list[int] = []
    for entry, end in spans:
        if end > entry + 1:
            pcs += [entry, rnd.randrange(entry + 1, end)]
    return pcs, [s for s in spans if s[1] > s[0] + 1], delta


def bench_pcs_per_second(path: str, rounds: int) -> list[float]:
    pcs, _, delta = _code_pcs(path, random.Random(1))
    offsets = [pc - delta for pc in pcs]
    rates: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        with BinarySymbols(path) as b:
            named = b.resolve(offsets)
        dt = time.perf_counter() - t0
        assert len(named) >= 0.999 * len(set(offsets)), "resolution failed"
        rates.append(len(set(offsets)) / dt)
    print(f"distinct PCs per round: {len(set(offsets))}")
    return rates


def _trace(path: str, n_samples: int) -> dict[str, pa.Table]:
    rnd = random.Random(23)
    _, spans, delta = _code_pcs(path, rnd)
    funcs = rnd.sample(spans, 8000)
    ret_pcs = [rnd.randrange(e + 1, end) for e, end in funcs for _ in range(5)]  # 40k
    stacks: list[list[int]] = []
    for _ in range(20_000):
        depth = rnd.randint(10, 40)
        stacks.append([rnd.choice(ret_pcs) for _ in range(depth)])
    weights = 1.0 / np.arange(1, len(stacks) + 1)  # Zipf-like popularity
    rng = np.random.default_rng(5)
    sids = rng.choice(len(stacks), size=n_samples, p=weights / weights.sum())
    pid = 4242
    key = identify(path).binary
    with ElfImage(path) as img:
        text = next(s for s in img.segments if s.flags & 1)
    # non-PIE: the process maps the text segment at its link address
    mappings = pa.Table.from_pylist(
        [dict(ts_ns=0, pid=pid, start=text.vaddr, end=text.vaddr + text.filesz,
              file_offset=text.offset, path=path, binary=key)],
        schema=schema.MAPPINGS,
    )  # fmt: skip
    assert delta == text.vaddr - text.offset
    return {
        "stacks": pa.table(
            {
                "stack_id": pa.array(range(len(stacks)), pa.int64()),
                "frames": pa.array(stacks, pa.list_(pa.uint64())),
            }
        ),
        "samples": pa.table(
            {
                "ts_ns": pa.array(np.arange(n_samples, dtype=np.uint64) * 20_000_000),
                "pid": pa.array(np.full(n_samples, pid, dtype=np.int32)),
                "stack_id": pa.array(sids.astype(np.int64)),
            }
        ),
        "mappings": mappings,
    }


def bench_samples(path: str, n_samples: int, rounds: int) -> tuple[list[float], list[float]]:
    t = _trace(path, n_samples)
    extract_s: list[float] = []
    name_s: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        pcs = stack_pcs(t["stacks"], t["samples"])
        binaries, symbols = extract(t["mappings"], pcs)
        extract_s.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        namer = StackNamer({**t, "binaries": binaries, "symbols": symbols}, open_binaries=False)
        distinct = t["samples"].group_by(["pid", "stack_id"]).aggregate([])
        named = 0
        for pid, sid in zip(distinct["pid"].to_pylist(), distinct["stack_id"].to_pylist()):
            named += sum(f.resolved for f in namer.frames(pid, sid))
        name_s.append(time.perf_counter() - t1)
        assert named > 0
    print(
        f"samples: {n_samples}, distinct stacks: {distinct.num_rows}, distinct PCs: {len(pcs)}, "
        f"symbol rows: {symbols.num_rows}"
    )
    return extract_s, name_s


def agreement(extra_go: list[str]) -> None:
    import tempfile

    from tests.unit.symbols_fixture import build_fixture, toolchain
    from tests.unit.test_symbols_addr2line import _compare, _sample_pcs, _text_shift

    for path in ("/usr/bin/etcd", "/usr/bin/containerd"):
        with ElfImage(path) as img:
            t = GoTable.from_elf(img)
            pcs = _sample_pcs(t, random.Random(23), 1)
            n, bad = _compare(t, toolchain("1.19"), path, pcs, _text_shift(img, t))
            print(f"{path} ({img.go_version()}, layout {t.layout}): {n - len(bad)}/{n} agree")
    tmp = Path(tempfile.mkdtemp(prefix="k3sprof-symbols-"))
    builds = [(m, None) for m in ("1.19", "1.27")]
    for go in extra_go:
        out = subprocess.run([go, "version"], capture_output=True, text=True).stdout.split()
        builds.append((out[2].removeprefix("go") if len(out) > 2 else go, go))
    for minor, go_bin in builds:
        b = build_fixture(minor, tmp / minor, go=go_bin)
        with ElfImage(str(b.binary)) as img:
            t = GoTable.from_elf(img)
            pcs = _sample_pcs(t, random.Random(7), 3)
            n, bad = _compare(t, b.go, str(b.binary), pcs, 0)
            print(f"fixture built by Go {minor} (layout {t.layout}): {n - len(bad)}/{n} agree")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="/usr/bin/containerd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--agreement", action="store_true", help="addr2line agreement instead")
    ap.add_argument(
        "--go", action="append", default=[], help="with --agreement: one more toolchain"
    )
    a = ap.parse_args(argv)
    if a.agreement:
        agreement(a.go)
        return 0
    rates = bench_pcs_per_second(a.binary, a.rounds)
    print(f"PCs resolved per second (cold, one batch): {_fmt(rates, 'PCs/s', 0)}")
    ex, nm = bench_samples(a.binary, a.samples, a.rounds)
    print(f"{a.samples} samples, stack_pcs + extract: {_fmt(ex, 's')}")
    print(f"{a.samples} samples, StackNamer over every distinct stack: {_fmt(nm, 's')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
