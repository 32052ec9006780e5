"""k3sprof doctor."""

from __future__ import annotations

import json

import click

from tracer.cli import cli


@cli.command(epilog="Example:\n\n  sudo k3sprof doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> int:
    """Check that this machine can record; each failure says how to fix it."""
    from tracer.collector import doctor as d

    res = d.report(d.run_checks())
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
