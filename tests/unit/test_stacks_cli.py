"""`k3sprof stacks` (issue 23 part 5): folded stacks of a written trace, filters, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.builders import trace
from tests.unit.test_analyzer_cli import write_trace
from tests.unit.test_stacks_analysis import K3S, META, _rows
from tracer.cli import main

APISERVER = "k3s[100];runtime.goexit;k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run"


def _dir(tmp_path: Path, **kw: Any) -> Path:
    return write_trace(tmp_path / "t", trace(meta=META, **_rows(**kw)))


def _lines(out: str) -> dict[str, int]:
    got = {}
    for line in out.splitlines():
        stack, _, n = line.rpartition(" ")
        got[stack] = int(n)
    return got


def test_folded_lines_outermost_first_with_counts(tmp_path: Path, capsys: Any) -> None:
    d = _dir(tmp_path)
    assert main(["stacks", str(d)]) == 0
    got = _lines(capsys.readouterr().out)
    assert got[APISERVER] == 12
    assert sum(got.values()) == 18  # every on-CPU sample, each once
    assert list(got.values()) == sorted(got.values(), reverse=True)


def test_filters(tmp_path: Path, capsys: Any) -> None:
    d = _dir(tmp_path)
    assert main(["stacks", str(d), "--component", "kine"]) == 0
    got = _lines(capsys.readouterr().out)
    assert set(got) == {"k3s[100];runtime.goexit;github.com/k3s-io/kine/pkg/drivers/sqlite."
                        "(*DB).Exec;syscall.fsync"} and sum(got.values()) == 3
    assert main(["stacks", str(d), "--pid", str(K3S + 1)]) == 0
    assert capsys.readouterr().out == ""
    # the window: from the start to the listen at 250 ms holds only the apiserver's samples
    assert main(["stacks", str(d), "--end", "listen:6443", "--profile", "k3s"]) == 0
    assert _lines(capsys.readouterr().out) == {APISERVER: 12}


def test_bad_input_is_one_line(tmp_path: Path, capsys: Any) -> None:
    d = _dir(tmp_path)
    assert main(["stacks", str(d), "--component", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "kube-apiserver" in err and "Traceback" not in err
    plain = write_trace(tmp_path / "plain", trace(meta=META, **_rows(stacks=False)))
    assert main(["stacks", str(plain)]) == 3
    assert "no stack tables" in capsys.readouterr().err
    assert main(["stacks", str(tmp_path / "nowhere")]) == 3


def test_perf_script_text_one_block_per_sample(tmp_path: Path, capsys: Any) -> None:
    d = _dir(tmp_path)
    assert main(["stacks", str(d), "--perf", "--component", "kube-apiserver"]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    blocks = [b for b in blocks if b.strip()]
    assert len(blocks) == 12
    head, *frames = blocks[1].splitlines()
    assert head == "k3s 100/101 0.020000: 1 cpu-clock:"  # the second sample, at 20 ms
    # innermost first, each `ADDR SYMBOL (MAPPING)` as perf script prints them
    assert frames == ["\t0 k8s.io/apiserver/pkg/server.(*GenericAPIServer).Run (k3s)",
                      "\t0 runtime.goexit (k3s)"]
