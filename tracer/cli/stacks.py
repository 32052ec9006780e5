"""`k3sprof stacks`: the trace's on-CPU samples as folded stacks, for a flame graph."""

from __future__ import annotations

import click

from tracer.cli import _options, cli, run_library


@cli.command(
    "stacks",
    epilog="\b\nExamples:\n"
    "  k3sprof stacks /var/tmp/k3s.trace > k3s.folded\n"
    "  flamegraph.pl k3s.folded > k3s.svg          # or: inferno-flamegraph, speedscope\n"
    "  k3sprof stacks /var/tmp/k3s.trace --component kubelet --end listen:10250\n"
    "  k3sprof stacks /var/tmp/k3s.trace --perf > k3s.perf.txt   # open in ui.perfetto.dev\n"
    "\nEach line is `process[pid];outermost;...;innermost COUNT` (on-CPU samples).\n"
    "Exit codes: 0 ok, 2 bad option, 3 unreadable trace or no stack tables.",
)
@click.argument("trace", type=click.Path())
@click.option("--start", metavar="COND",
              help="Only samples from this milestone on (the analyze COND syntax).")
@click.option("--end", metavar="COND", help="Only samples up to this milestone.")
@click.option("--pid", type=int, help="Only this process's samples.")
@click.option("--component", help="Only stacks charged to this component, e.g. kubelet.")
@click.option("--perf", is_flag=True,
              help="Print every sample in `perf script` text instead: Perfetto opens it as a "
              "callstack profile with a flame graph (ui.perfetto.dev), as does speedscope.")
@_options.profile()
def stacks_cmd(trace: str, start: str | None, end: str | None, pid: int | None,
               component: str | None, perf: bool, profile: str) -> int:
    """Print on-CPU stacks as folded lines (flamegraph.pl, speedscope, inferno read them)."""
    from tracer.analyzer import Options, folded_stacks

    options = None
    if start is not None or end is not None or profile != "auto":
        options = Options(profile=profile, start=start, end=end, scope="all")
    lines = run_library(folded_stacks, trace, options, pid=pid, component=component, perf=perf)
    for line in lines:
        click.echo(line if isinstance(line, str) else f"{line[0]} {line[1]}")
    return 0
