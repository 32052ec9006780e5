"""`k3sprof stacks`: the trace's on-CPU samples as folded stacks, for a flame graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tracer.cli import _options, cli, run_library

if TYPE_CHECKING:
    from tracer.analyzer import Options


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
@click.option("--pid", type=int, help="Only this process's samples.")
@click.option("--component", help="Only stacks charged to this component, e.g. kubelet.")
@click.option("--perf", is_flag=True,
              help="Print every sample in `perf script` text instead: Perfetto opens it as a "
              "callstack profile with a flame graph (ui.perfetto.dev), as does speedscope.")
@_options.analysis(
    scope_option=False, redaction=False,
    start_help="Only samples from this milestone on (the analyze COND syntax).",
    end_help="Only samples up to this milestone.",
)
def stacks_cmd(trace: str, pid: int | None, component: str | None, perf: bool,
               options: Options) -> int:
    """Print on-CPU stacks as folded lines (flamegraph.pl, speedscope, inferno read them)."""
    from tracer.analyzer import Options, folded_stacks

    # no analysis option given: every sample (no analysis window to find)
    window = None if options == Options(scope="all") else options
    lines = run_library(folded_stacks, trace, window, pid=pid, component=component, perf=perf)
    for line in lines:
        click.echo(line if isinstance(line, str) else f"{line[0]} {line[1]}")
    return 0
