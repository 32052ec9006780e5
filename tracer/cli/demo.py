"""k3sprof demo."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.cli import cli, run_library


@cli.command(
    epilog="""\b
Examples:
  sudo k3sprof demo                 # writes reports/demo/demo.html
  sudo k3sprof demo -o /tmp/demo
  sudo k3sprof demo --k3s           # record `k3s server` itself (where k3s is installed)
  sudo k3sprof demo --no-go         # without gok3s, the k3s-shaped Go stand-in

\b
The demo starts real etcd and containerd, runs modprobe, iptables and CNI plugins in private
network namespaces, records it all, and tears everything down (nothing is left running or
changed on the host). Outputs: OUT/demo.html, OUT/analysis.json, OUT/analysis.txt,
OUT/demo.trace/, OUT/demo.log. Then it records gok3s, a k3s-shaped Go stand-in (docs/gok3s.md):
OUT/gok3s.html, OUT/gok3s-analysis.json|txt, OUT/gok3s.trace/, OUT/gok3s-truth.jsonl."""
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("reports/demo"),
    show_default=True,
    help="Directory for the trace, analysis and report.",
)
@click.option(
    "--k3s",
    "k3s",
    is_flag=True,
    help="Record `k3s server` instead of the embedded demo (needs k3s installed).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01, max=5.0),
    default=0.25,
    show_default=True,
    help="Readiness poll interval of the demo supervisor, seconds.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.001, max=30.0),
    default=None,
    help="Per-request timeout of the etcd /health poll, seconds [default: 0.8 x the interval]. "
    "Fix it when comparing intervals (what `whatif poll:` changes is the interval only).",
)
@click.option(
    "--etcd-election-timeout",
    type=click.IntRange(min=10, max=50_000),
    default=None,
    metavar="MS",
    help="etcd's --election-timeout, ms (heartbeat a tenth) [default: etcd's, 1000]. A fresh "
    "etcd waits a random 0.1-1.0 election timeouts before it serves: fix it small when "
    "comparing runs, so that draw does not dominate their spread.",
)
@click.option(
    "--go/--no-go",
    default=True,
    show_default=True,
    help="Also record gok3s, the k3s-shaped Go stand-in (needs a Go toolchain: make setup).",
)
def demo(output: Path, k3s: bool, poll_interval: float, request_timeout: float | None,
         etcd_election_timeout: int | None, go: bool) -> int:
    """Record a real control-plane-style startup, analyze it and write the report (root)."""
    from tracer.demo.run import run_demo

    result = run_library(
        run_demo, output, click.echo, k3s=k3s, poll_interval_s=poll_interval, go=go,
        request_timeout_s=request_timeout, etcd_election_ms=etcd_election_timeout,
    )
    for note in result.notes:
        click.echo(f"k3sprof: note: {note}", err=True)
    return 0
