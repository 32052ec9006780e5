"""k3sprof info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tracer import schema
from tracer.cli import cli, run_library


def describe(trace: schema.Trace) -> dict[str, Any]:
    m = trace.meta
    start, end = m.get("start_ns"), m.get("end_ns")
    return {
        "path": str(trace.path),
        "schema_version": m.get("schema_version"),
        "tracer_version": m.get("tracer_version"),
        "hostname": m.get("hostname"),
        "kernel": m.get("kernel"),
        "boot_id": m.get("boot_id"),
        "clock": m.get("clock", "CLOCK_MONOTONIC"),
        "realtime_offset_ns": m.get("realtime_offset_ns"),
        "start_ns": start,
        "end_ns": end,
        "duration_s": (end - start) / 1e9 if start is not None and end is not None else None,
        "complete": bool(m.get("complete", False)),
        "stop_reason": m.get("stop_reason"),
        "target_command": m.get("target_command"),
        "command_exit": m.get("command_exit"),
        "probes": m.get("probes", {}),
        "probes_unavailable": m.get("probes_unavailable", {}),
        "attach_s": m.get("attach_s"),
        "lost_events": trace.lost_events,
        "tables": {name: t.num_rows for name, t in sorted(trace.tables.items())},
        "truncated": trace.truncated,
        "missing": trace.missing,
        # context sources that had trouble (journal unreadable, netlink overruns, ...)
        "context_problems": m.get("context", {}),
        # user stacks (docs/stacks.md): sample rate, counts, errors by errno, symbol extract
        "stacks": m.get("stacks"),
    }


@cli.command(epilog="Example:\n\n  k3sprof info /var/tmp/k3s.trace --json")
@click.argument("trace", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(trace: Path, as_json: bool) -> int:
    """Show a trace's metadata, rows per table and lost events."""
    t = run_library(schema.load, trace)
    d = describe(t)
    if as_json:
        click.echo(json.dumps(d, indent=1, sort_keys=True))
        return 0
    dur = f"{d['duration_s']:.3f}s" if d["duration_s"] is not None else "unknown (incomplete)"
    click.echo(f"trace     {d['path']}  (schema {d['schema_version']}, "
               f"k3sprof {d['tracer_version']})")
    click.echo(f"host      {d['hostname']}  kernel {d['kernel']}  boot {d['boot_id']}")
    click.echo(f"duration  {dur}  stopped: {d['stop_reason'] or '-'}")
    if not d["complete"]:
        click.echo("WARNING   recording did not finish cleanly: data up to its last flush")
    if d["target_command"]:
        click.echo(f"command   (recorded; see analyze/report for redacted argv)  exit "
                   f"{d['command_exit']}")
    for name, rows in d["tables"].items():
        click.echo(f"table     {name:10} {rows:>10} rows")
    for name, note in {**d["truncated"], **d["missing"]}.items():
        click.echo(f"WARNING   {name}: {note}")
    lost = d["lost_events"]
    click.echo(f"lost      {lost} events" + ("  <-- the ring buffer overflowed" if lost else ""))
    for concern, why in sorted(d["probes_unavailable"].items()):
        click.echo(f"probes    {concern} unavailable: {why}")
    st = d["stacks"]
    if isinstance(st, dict):
        counts = st.get("counts") or {}
        click.echo(f"stacks    {counts.get('cpu', 0)} cpu samples at {st.get('sample_hz')} Hz, "
                   f"{sum(counts.values()) - counts.get('cpu', 0)} event stacks, "
                   f"{st.get('stacks', 0)} distinct; symbols {st.get('symbols', '-')}")
        errs = st.get("errors") or {}
        if errs:
            click.echo("WARNING   stack errors: " + ", ".join(
                f"{k} {v}" for k, v in sorted(errs.items())) + " (docs/stacks.md, Errors)")
        if st.get("processes_unmapped"):
            click.echo(f"WARNING   stacks: {st['processes_unmapped']} processes exited before "
                       "their /proc/PID/maps was read (their PCs stay unnamed)")
    for source, problem in sorted(d["context_problems"].items()):
        click.echo(f"WARNING   context {source}: {problem}")
    return 0
