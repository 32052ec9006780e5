"""Options shared by the commands that analyze a trace (analyze, report, export, compare):
one definition each, so their names, defaults and help stay the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
