"""Options shared by the commands that analyze a trace: one definition each, so their names,
defaults and help stay the same everywhere. `analysis` is THE set of analysis options (profile,
--start, --end, --scope, --no-redact) of analyze, report, export, compare, whatif, dataset and
stacks, handed to the command as one `options: Options`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])

SCOPE_HELP = (
    "tree: only the recorded command's process tree (processes outside it still appear as "
    "what it waited for); all: every process in the trace. "
    "Default: tree when the trace was recorded with `record -- CMD`, else all."
)


def scope(f: F) -> F:
    return click.option("--scope", type=click.Choice(["tree", "all"]), default=None,
                        help=SCOPE_HELP)(f)


def profile(help: str = "Component profile: k3s, generic, auto, or a profile JSON file.",
            ) -> Callable[[F], F]:
    return click.option("--profile", default="auto", show_default=True, help=help)


def no_redact(help: str = "Keep tokens and passwords found in command lines "
              "(do not share the result).") -> Callable[[F], F]:
    return click.option("--no-redact", is_flag=True, help=help)


def output(help: str) -> Callable[[F], F]:
    """-o/--output FILE plus --force (an existing output is an error without it)."""
    def deco(f: F) -> F:
        f = click.option("--force", is_flag=True, help="Overwrite an existing output file.")(f)
        return click.option("-o", "--output", type=click.Path(path_type=Path), help=help)(f)
    return deco


START_HELP = ("Start milestone, a COND (docs/analyze.md; default: the profile's, else the recorded "
              "command's first exec, else the trace start).")
END_HELP = ("End milestone, a COND, e.g. listen:10250 (default: the profile's; generic: the "
            "recorded command's exit).")


def analysis(
    *,
    scope_option: bool = True,
    redaction: bool = True,
    profile_help: str = "Component profile: k3s, generic, auto, or a profile JSON file.",
    start_help: str = START_HELP,
    end_help: str = END_HELP,
) -> Callable[[F], F]:
    """The analysis options: --profile, --start, --end, --scope (unless scope_option=False: all)
    and --no-redact (unless redaction=False: redacted), passed to the command as one
    `options: Options` keyword argument instead of one argument each."""

    def deco(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, profile: str, start: str | None, end: str | None,
                    scope: str | None = None, no_redact: bool = False, **kw: Any) -> Any:
            # imported here: `record` and `boot` must not load the analyzer (pyarrow) to start
            from tracer.analyzer import Options

            mode = (scope or "auto") if scope_option else "all"
            options = Options(profile=profile, start=start, end=end, redact=not no_redact,
                              scope=mode)
            return f(*args, options=options, **kw)

        g: Callable[..., Any] = command
        if redaction:
            g = no_redact()(g)
        if scope_option:
            g = scope(g)
        g = click.option("--end", "end", metavar="COND", help=end_help)(g)
        g = click.option("--start", "start", metavar="COND", help=start_help)(g)
        g = profile(profile_help)(g)
        return cast(F, g)

    return deco
