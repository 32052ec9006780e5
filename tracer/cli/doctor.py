"""k3sprof doctor."""

from __future__ import annotations

import json

import click

from tracer.cli import cli


@cli.command(epilog="Example:\n\n  sudo k3sprof doctor\n\n"
             "  sudo k3sprof doctor --cached   # an image whose cache a twin filled")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--cached", is_flag=True,
              help="Accept a bytecode-cache entry of this exact build (kernel, headers, BCC, "
                   "k3sprof) that loads and attaches here instead of compiling: for images "
                   "or VMs whose /var/cache/k3sprof/bpf was copied from a twin's doctor. "
                   "Without it doctor always compiles with BCC.")
def doctor(as_json: bool, cached: bool) -> int:
    """Check that this machine can record; each failure says how to fix it."""
    from tracer.collector import doctor as d

    res = d.report(d.run_checks(cached=cached))
    if as_json:
        click.echo(json.dumps(res, indent=1, sort_keys=True))
    else:
        for c in res["checks"]:
            mark = "ok  " if c["ok"] else ("FAIL" if c["required"] else "--  ")
            line = f"{mark} {c['name']}: {c['detail']}"
            if not c["ok"] and c["fix"]:
                line += f"\n       fix: {c['fix']}"
            click.echo(line)
        click.echo("recording can work" if res["ok"] else "recording CANNOT work (see FAIL)")
    return 0 if res["ok"] else 1
