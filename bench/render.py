"""Render the tables of measured figures in README.md and docs/ from the newest results file.

    .venv/bin/python -m bench.render          # rewrite every rendered block
    .venv/bin/python -m bench.render --check  # exit 1 (and say where) if any block differs
    .venv/bin/python -m bench.render --import-kernels reports/kernels   # + a kernel matrix run

A rendered block sits between two markers, and nothing between them is typed by hand:

    <!-- rendered:NAME (bench/render.py; do not edit) -->
    ...
    <!-- end rendered:NAME -->

`make docs` rewrites them; `make docs-check` (part of `make test`) fails when a block differs from
what this script renders from the newest bench/runs/*.json, so a figure edited by hand, or a
results file committed without re-rendering, is caught.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import ROOT
from bench import results as R

#: the files that hold rendered blocks
DOCS = (ROOT / "README.md", ROOT / "docs" / "bench.md", ROOT / "docs" / "kernels.md",
        ROOT / "docs" / "whatif.md", ROOT / "docs" / "runs.md")

#: the README's summary: these measures, in this order
SUMMARY_IDS = (
    "overhead.k3sprof.ratio",
    "overhead_allcores.k3sprof.ratio",
    "overhead.recorder_cpu",
    "overhead_allcores.recorder_cpu",
    "overhead.strace.ratio",
    "overhead.bpftrace.ratio",
    "throughput.lossless",
    "attach.first_event",
    "attach.line",
    "attach.stop",
    "attach.peak_rss",
    "scale.analyze.1000k",
    "scale.analyze.1000k.rss",
    "scale.report.1000k",
)

#: shown decimals at most, per unit (the resolution may be finer than a reader needs)
MAX_DECIMALS = {"MiB": 1, "MB": 1}

_BLOCK = re.compile(
    r"(<!-- rendered:(?P<name>[\w-]+) \(bench/render.py; do not edit\) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- end rendered:(?P=name) -->)",
    re.S,
)


def _decimals(resolution: float) -> int:
    if resolution <= 0 or not math.isfinite(resolution):
        return 3
    return max(0, min(3, -math.floor(math.log10(resolution))))


def fmt(value: float, unit: str, resolution: float) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "events/s":
        return f"{value:,.0f}/s"
    d = min(_decimals(resolution), MAX_DECIMALS.get(unit, 3))
    text = f"{value:,.{d}f}"
    return f"{text}x" if unit == "x" else f"{text} {unit}" if unit != "count" else text


def measured(m: R.Measure) -> str:
    if m["n"] == 0 or math.isnan(m["median"]):
        return m["note"] or "not measured"
    u, r = m["unit"], m["resolution"]
    text = fmt(m["median"], u, r)
    if m["n"] > 1:
        text += f" ({fmt(m['min'], u, r)} - {fmt(m['max'], u, r)}, n={m['n']})"
    else:
        text += " (n=1)"
    if m["note"]:
        text += f"; {m['note']}"
    return text


def goal_text(m: R.Measure) -> str:
    g = m["goal"]
    if g is None:
        return "-"
    value = f"{g['value']:,.0f}/s" if g["unit"] == "events/s" else \
        f"{g['value']:g}x" if g["unit"] == "x" else f"{g['value']:g} {g['unit']}"
    return f"{g['op']} {value}"


def table(ms: Iterable[R.Measure]) -> str:
    rows = ["| measure | goal | measured: median (min - max, n) | verdict |",
            "| --- | --- | --- | --- |"]
    for m in ms:
        rows.append(f"| {m['name']} | {goal_text(m)} | {measured(m)} | {m['verdict'] or '-'} |")
    return "\n".join(rows)


def provenance(path: Path, doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return (f"From `{path.relative_to(ROOT)}`: {doc['date']}, commit `{doc['commit']}`, "
            f"`{doc['command']}` ({doc['total_s'] / 60:.1f} min); {m['cpus']} x {m['cpu']}, "
            f"{m['memory_gib']} GiB, kernel {m['kernel']}, {m['distro']}, Python {m['python']}, "
            f"BCC {m['bcc']}; load average {doc['load']['start']} at the start, "
            f"{doc['load']['end']} at the end. Verdicts are computed (bench/results.py): met "
            "only by more than the measurement's resolution, \"at the limit\" within it; a "
            "ratio below 1.0 is \"within noise\".")


def blocks(path: Path, doc: dict[str, Any]) -> dict[str, str]:
    """Block name -> its rendered body (ending in a newline)."""
    ms = doc["measures"]
    by_id = {m["id"]: m for m in ms}
    summary = [by_id[i] for i in SUMMARY_IDS if i in by_id]
    head = provenance(path, doc)
    return {
        "bench-summary": f"{head}\n\n{table(summary)}\n",
        "bench-all": f"{head}\n\n{table(ms)}\n",
        "bench-dataset": f"{head}\n\n{table(m for m in ms if m['id'].startswith('dataset.'))}\n",
        "bench-whatif": f"{head}\n\n{table(m for m in ms if m['id'].startswith('whatif_demo.'))}\n",
    }


# -- the kernel matrix (tests/kernels writes reports/kernels/results.json + systemd/delay.json) --


def kernels_table(rows: list[dict[str, Any]], boots: list[dict[str, Any]]) -> str:
    """The kernel matrix's table: one row per kernel VM, then the systemd VM's boots."""
    lines = [
        "| kernel | accel | result | attach (compile) s | events process/socket/module, lost "
        "| demo: module rows, s | warm start: first event / `recording` line (load) s | VM s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ev = r.get("events", {})
        dv = r.get("demo_events", {})
        w = r.get("warm", {})
        lines.append(
            f"| {r['kernel']} | {r['accel']} | {r['result']} "
            f"({sum(v == 'passed' for v in r['tests'].values())}/{len(r['tests'])}) "
            f"| {r.get('attach_s', '?')} ({r.get('compile_s', '?')}) "
            f"| {ev.get('process', '?')}/{ev.get('socket', '?')}/{ev.get('module', '?')}, "
            f"{r.get('lost_events', '?')} | {dv.get('module', '?')}, {r.get('demo_s', '?')} "
            f"| {w.get('first_event_s', '?')} / {w.get('line_s', '?')} ({w.get('load_s', '?')}"
            f"{', ' + str(w.get('loaded_from')) if w.get('loaded_from') != 'cache' else ''}) "
            f"| {r['vm_s']} |")
    if boots:
        lines += ["", "systemd VM (6.1, stand-in k3s.service): " + "; ".join(
            f"boot {b['boot']}: k3s.service held {b['k3s_held_s']} s, k3sprof-boot start "
            f"-> READY {b['unit_start_to_ready_s']} s" for b in boots)]
    return "\n".join(lines)


def kernels_block(path: Path, doc: dict[str, Any]) -> str:
    m = doc["machine"]
    return (f"From `{path.relative_to(ROOT)}`: {doc['date']}, commit `{doc['commit']}`, "
            f"`{doc['command']}`; host {m['cpus']} x {m['cpu']}, load average "
            f"{doc['load']['start']} at the start of the import. One run (n=1 per kernel).\n\n"
            f"{kernels_table(doc['rows'], doc['systemd_boots'])}\n")


def import_kernels(results_dir: Path, command: str) -> Path:
    """A kernel matrix run's results (reports/kernels/) as a committed results file."""
    import json
    import time

    from bench.run import machine

    rows = json.loads((results_dir / "results.json").read_text())
    delay = results_dir / "systemd" / "delay.json"
    boots = json.loads(delay.read_text())["boots"] if delay.exists() else []
    m = machine()
    doc = {"format": R.FORMAT, "kind": "kernels",
           "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                 time.gmtime((results_dir / "results.json").stat().st_mtime)),
           "commit": R.commit(), "command": command, "machine": m,
           "load": {"start": m["load_at_start"]}, "rows": rows, "systemd_boots": boots}
    R.RUNS.mkdir(parents=True, exist_ok=True)
    out = R.RUNS / f"kernels-{time.strftime('%Y-%m-%dT%H%MZ', time.gmtime())}.json"
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


def render_text(text: str, bodies: dict[str, str], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in bodies:
            raise SystemExit(f"{where}: unknown rendered block {name!r}")
        return m.group(1) + bodies[name] + m.group(4)

    return _BLOCK.sub(sub, text)


def run(check: bool, files: Iterable[Path] = DOCS,
        say: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> int:
    path = R.newest()
    if path is None:
        say("bench.render: no results file in bench/runs/ (run `sudo make bench` first)")
        return 1
    bodies = blocks(path, R.load(path))
    kpath = R.newest("kernels")
    bodies["kernels"] = kernels_block(kpath, R.load(kpath)) if kpath is not None else (
        "No kernel matrix run is imported yet: after `make test-kernels`, "
        "`.venv/bin/python -m bench.render --import-kernels reports/kernels` stores its "
        "results in bench/runs/ and renders them here.\n")
    bad = 0
    for f in files:
        text = f.read_text()
        new = render_text(text, bodies, str(f))
        if new == text:
            continue
        if check:
            bad += 1
            say(f"{f.relative_to(ROOT)}: a rendered table differs from {path.name} "
                "(edited by hand, or not re-rendered): run `make docs`")
        else:
            f.write_text(new)
            say(f"rendered {f.relative_to(ROOT)} from {path.name}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if any rendered block differs")
    ap.add_argument("--import-kernels", type=Path, metavar="DIR",
                    help="first store a kernel matrix run's results (DIR = reports/kernels of "
                    "a `make test-kernels` run) as bench/runs/kernels-STAMP.json")
    ap.add_argument("--command", default="CI=true make test-kernels",
                    help="how the imported kernel matrix run was made (said in the docs)")
    args = ap.parse_args(argv)
    if args.import_kernels is not None:
        print(f"stored {import_kernels(args.import_kernels, args.command)}", file=sys.stderr)
    return run(args.check)


if __name__ == "__main__":
    sys.exit(main())
