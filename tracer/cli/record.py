"""k3sprof record."""

from __future__ import annotations

from pathlib import Path

import click

from tracer.cli import cli, run_library


def _summary(s) -> str:  # type: ignore[no-untyped-def]
    lines = [f"k3sprof: recorded {s.duration_s:.2f}s to {s.output} (stopped: {s.stop_reason})"]
    rows = ", ".join(f"{n} {c}" for n, c in sorted(s.rows.items()) if c) or "no events"
    lines.append(f"  rows: {rows}")
    if s.lost_events:
        lines.append(f"  WARNING: {s.lost_events} events LOST (ring buffer full): "
                     "raise --buffer-pages or trace less")
    else:
        lines.append("  lost events: 0")
    st = s.stacks
    if st:
        counts = st.get("counts") or {}
        errs = st.get("errors") or {}
        lines.append(f"  stacks: {counts.get('cpu', 0)} cpu samples at {st.get('sample_hz')} Hz, "
                     f"{sum(counts.values()) - counts.get('cpu', 0)} event stacks, "
                     f"{st.get('stacks', 0)} distinct, "
                     f"{st.get('processes_with_stacks', 0)} processes")
        if errs:
            lines.append("  WARNING: stack errors: " + ", ".join(
                f"{k} {v}" for k, v in sorted(errs.items())) + " (docs/stacks.md, Errors)")
    for concern, why in sorted(s.unavailable.items()):
        lines.append(f"  unavailable: {concern} ({why})")
    if s.command_exit is not None:
        lines.append(f"  command exit status: {s.command_exit}")
    lines.append(f"  next: k3sprof info {s.output}   |   k3sprof analyze {s.output}")
    return "\n".join(lines)


@cli.command(
    epilog="""\b
Examples:
  sudo k3sprof record -o /var/tmp/k3s.trace -- k3s server
  sudo k3sprof record -o t --until listen:6443 --duration 120
  sudo k3sprof record -o t -- sh -c 'curl -s localhost:8080'
  sudo k3sprof record -o t --no-sched -- k3s server   # without thread states
  sudo k3sprof record -o t --until 'log:successfully booted' -- containerd
  sudo k3sprof record -o t --sample-hz 99 -- ./my-go-daemon   # denser stacks
  sudo k3sprof record -o t --no-stacks -- k3s server           # no user stacks

\b
COND: exec:NAME  exit:NAME  listen:PORT|PATH  connect-ok:PORT|PATH  log:REGEX
      link-up:IFNAME  addr:IFNAME
Many daemons listen BEFORE they are ready (containerd listens, then boots;
etcd listens, then elects a leader: ~0.1-0.9 s later here), so listen:
stops at the socket, not at readiness. To stop when the daemon says it is
ready, match its log line instead: --until 'log:successfully booted'
(containerd), --until 'log:ready to serve client requests' (etcd).
Stops when CMD exits, at --until, after --duration, or on Ctrl-C/SIGTERM
(a second Ctrl-C stops immediately). The trace directory is root-only."""
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Trace directory to write (must not exist unless --force).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Stop after S seconds.")
@click.option("--until", "until", metavar="COND",
              help="Stop at the first event matching COND. listen:PORT is often before the "
                   "daemon is ready; log:REGEX on its ready line is when it says it is "
                   "(e.g. --until 'log:successfully booted').")
@click.option("--force", is_flag=True, help="Overwrite an existing trace directory.")
@click.option("--user", metavar="USER", help="Run CMD as USER (the recorder stays root).")
@click.option("--journal-unit", "journal_units", multiple=True, metavar="UNIT",
              help="Follow UNIT's journal into the log table (repeatable).")
@click.option("--no-capture", is_flag=True,
              help="Let CMD write straight to the terminal (no log table from its output).")
@click.option("--no-netlink", is_flag=True,
              help="Do not record netlink link/address/route changes.")
@click.option("--sched/--no-sched", default=True, show_default=True,
              help="Thread states (cpu/runqueue/io/sleep), who woke whom, block I/O and "
                   "fsyncs (docs/sched.md): on by default; --no-sched turns them off. "
                   "--sched is still accepted and changes nothing (it was opt-in until "
                   "issue 24).")
@click.option("--sched-hooks", type=click.Choice(["auto", "raw", "tracepoint"]),
              default="auto", hidden=True,
              help="How sched hooks the scheduler: raw tracepoints where the kernel's BTF "
                   "allows (auto), or force one path (tests, benchmarks).")
@click.option("--stacks/--no-stacks", default=True, show_default=True,
              help="Record user stacks (docs/stacks.md): on-CPU samples and the stack at each "
                   "fork, connect/bind/listen/accept, fsync and module load of CMD's process "
                   "tree and of the --profile's executables.")
@click.option("--sample-hz", type=click.IntRange(1, 1000), default=49, show_default=True,
              help="On-CPU stack samples per second per CPU (when the target is on it).")
@click.option("--stack-map-entries", type=int, default=16384, show_default=True,
              help="Distinct stacks the kernel's stack map holds (power of two, ~1 KiB each, "
                   "preallocated); a stack whose bucket is taken goes to a 4096-entry spill map "
                   "(docs/stacks.md). More for long recordings of many programs.")
@click.option("--profile", "profile", type=click.Choice(["k3s", "generic"]), default="k3s",
              show_default=True,
              help="Whose stacks are taken besides CMD's tree: k3s = the k3s node's Go daemons "
                   "(k3s, k3s-server, containerd, etcd, kubelet...), generic = none.")
@click.option("--buffer-pages", type=int, default=4096, show_default=True,
              help="Ring buffer size in 4 KiB pages (power of two).")
@click.option("--flush-interval", type=click.FloatRange(min=0.05, max=1.0), default=1.0,
              show_default=True, help="Seconds between writes to disk (at most 1).")
@click.option("--wakeup", is_flag=True, hidden=True,
              help="Wake the collector on every event (benchmarks only).")
@click.option("--print-bpf", is_flag=True, hidden=True,
              help="Print the BPF program and cflags, then exit.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD ARGS...]")
def record(output: Path, duration: float | None, until: str | None, force: bool,
           user: str | None, journal_units: tuple[str, ...], no_capture: bool,
           no_netlink: bool, sched: bool, sched_hooks: str, stacks: bool, sample_hz: int,
           stack_map_entries: int, profile: str, buffer_pages: int, flush_interval: float,
           wakeup: bool, print_bpf: bool, command: tuple[str, ...]) -> int:
    """Record process, socket and module events system-wide (root)."""
    from tracer import conditions
    from tracer.collector import probes
    from tracer.collector.start import RecordOptions
    from tracer.collector.start import record as do_record

    if print_bpf:
        plan = run_library(probes.plan, ring_pages=buffer_pages, sched_hooks=sched_hooks)
        click.echo(probes.source())
        click.echo("// cflags: " + " ".join(plan.cflags))
        return 0
    cond = run_library(conditions.parse, until) if until else None
    opts = RecordOptions(
        output=output,
        command=command,
        duration=duration,
        until=cond,
        user=user,
        journal_units=journal_units,
        capture_output=not no_capture,
        netlink=not no_netlink,
        sched=sched,
        sched_hooks=sched_hooks,
        stacks=stacks,
        sample_hz=sample_hz,
        stack_map_entries=stack_map_entries,
        profile=profile,
        force=force,
        ring_pages=buffer_pages,
        flush_interval=flush_interval,
        wakeup=wakeup,
        notify=lambda msg: click.echo(f"k3sprof: {msg}", err=True),
    )
    summary = run_library(do_record, opts)
    click.echo(_summary(summary), err=True)
    return 0
