"""The analyzer's PASSES against what each pass declares (@reads in tracer/analyzer/passes.py):
a pass reads only the inputs and what passes above it wrote, every pass result is a field of
Work written once, and a real analysis reads nothing a pass did not declare (checked by
watching every Work field each pass touches, on a real recording and on planted traces with
scheduler data and stacks, where the sched/stack-only branches run)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tests.builders import trace
from tests.unit.test_schedpath import _with_sched
from tests.unit.test_stacks_analysis import META, _rows
from tracer import schema
from tracer.analyzer import PASSES
from tracer.analyzer.work import INPUTS, Options, Redactor, Work

WORK_FIELDS = {f.name for f in fields(Work)}
ETCD = Path(__file__).resolve().parents[1] / "data" / "etcd-start.trace"


def test_each_pass_reads_only_inputs_and_earlier_results() -> None:
    written: set[str] = set()
    for name, step in PASSES:
        early = sorted(step.reads - INPUTS - written)
        assert not early, f"pass {name} reads {early} before a pass writes it"
        assert name in WORK_FIELDS and name not in INPUTS, name
        assert name not in written, f"{name} written twice"
        written.add(name)
    assert written | INPUTS == WORK_FIELDS, "a Work field no pass writes"


def test_the_order_check_fails_on_a_swap() -> None:
    # the check above is not vacuous: moving `path` before `window` breaks it
    names = [n for n, _ in PASSES]
    i, j = names.index("window"), names.index("path")
    swapped = list(PASSES)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    written: set[str] = set()
    bad = []
    for name, step in swapped:
        if step.reads - INPUTS - written:
            bad.append(name)
        written.add(name)
    assert "path" in bad


class _Watched(Work):
    """Work that notes every field read (per pass, reset by the test)."""

    def __getattribute__(self, name: str) -> Any:
        if name in WORK_FIELDS:
            object.__getattribute__(self, "seen").add(name)
        return object.__getattribute__(self, name)


def _planted_sched_stacks() -> schema.Trace:
    return trace(meta=META, **_rows(sched=True))


@pytest.mark.parametrize(
    ("what", "load", "options"),
    [
        ("etcd-start recording", lambda: schema.load(ETCD), Options()),
        ("etcd-start, all", lambda: schema.load(ETCD), Options(scope="all")),
        ("planted sched", lambda: _with_sched(server_sleeps=True), Options()),
        ("planted sched+stacks", _planted_sched_stacks,
         Options(profile="k3s", end="exit:iptables")),
    ],
)
def test_a_pass_reads_nothing_it_did_not_declare(what: str, load: Any, options: Options) -> None:
    w = _Watched(full=load(), options=options, redact=Redactor(True))
    touched: dict[str, set[str]] = {}
    for name, step in PASSES:
        object.__setattr__(w, "seen", set())
        part = step(w)
        touched[name] = set(object.__getattribute__(w, "seen"))
        undeclared = touched[name] - step.reads
        assert not undeclared, f"{what}: pass {name} read {sorted(undeclared)} undeclared"
        setattr(w, name, part)
    # the sched- and stack-only reads did happen on the planted traces (else this proves little)
    if what == "planted sched+stacks":
        assert {"stackix", "stackpath"} <= touched["stacks"]
        assert {"schedix", "stackix"} <= touched["blockers"]
