"""k3sprof command line: a click group; one module per subcommand, each thin.

A command parses options, calls one library function, and maps TracerError to an exit code.
Only this package prints to the terminal and exits.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import click

from tracer import __version__
from tracer._errors import TracerError

EPILOG = """\b
Example (record a k3s start, then look at it):
  sudo k3sprof record -o /var/tmp/k3s.trace --until listen:10250 -- k3s server
  k3sprof analyze /var/tmp/k3s.trace
  k3sprof report /var/tmp/k3s.trace -o reports/k3s.html
"""


class TracerCommandError(click.ClickException):
    """A TracerError on its way to the terminal: one line, its own exit code."""

    def __init__(self, err: TracerError) -> None:
        super().__init__(str(err))
        self.exit_code = err.exit_code  # type: ignore[misc]  # click types it as a ClassVar

    def show(self, file=None) -> None:  # type: ignore[no-untyped-def]
        click.echo(f"k3sprof: error: {self.message}", err=True)


class _LazyGroup(click.Group):
    """Imports a subcommand's module only when that command runs (or help lists it).

    `k3sprof record` must go live fast (boot tracing): it should not pay for pyarrow.compute,
    plotly and the analyzer, which other commands import.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n.replace("_", "-") for n in COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = cmd_name.replace("-", "_")
        if cmd_name not in self.commands and module in COMMANDS:
            importlib.import_module(f"tracer.cli.{module}")
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="k3sprof")
def cli() -> None:
    """Find what a k3s node's startup waited on, and what would make it faster."""


# Each subcommand lives in its own module tracer/cli/<name>.py; importing it adds it to the
# group. Add new commands here.
COMMANDS = ("record", "info", "doctor", "analyze", "boot", "report", "compare", "export", "demo",
            "stacks", "ingest_log", "whatif", "dataset", "query")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (testable in-process)."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="k3sprof",
                      standalone_mode=False)
    except TracerError as e:
        TracerCommandError(e).show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("k3sprof: aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    return rv if isinstance(rv, int) else 0


P = ParamSpec("P")
R = TypeVar("R")


def run_library(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call a library function from a command, turning TracerError into a clean exit."""
    try:
        return fn(*args, **kwargs)
    except TracerError as e:
        raise TracerCommandError(e) from None


if __name__ == "__main__":
    sys.exit(main())
