"""Numbers in the docs cannot drift (issue 25 item 4): the rendered blocks are well formed and
sit where bench/render.py rewrites them, measured tables are not typed by hand, no dated table
says "now", and the README's set-up is exactly the two commands.

Each check is a function over text that returns its problems, run on the real files and on a
planted bad text (so each check is shown to fail)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import ROOT, render

#: every file a user reads as documentation
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
                    *(ROOT / "vagrant").rglob("README.md")])

#: block name -> the file it belongs in
BLOCK_HOME = {"bench-summary": "README.md", "bench-all": "docs/bench.md",
              "kernels": "docs/kernels.md", "bench-whatif": "docs/whatif.md",
              "bench-dataset": "docs/runs.md"}

_OPEN = re.compile(r"<!-- rendered:([\w-]+)(.*?)-->")
_END = re.compile(r"<!-- end rendered:([\w-]+) -->")
_OPEN_EXACT = "<!-- rendered:{} (bench/render.py; do not edit) -->"


def known_blocks() -> set[str]:
    """The blocks bench/render.py renders: what `blocks()` returns, plus the kernel matrix's."""
    doc = {"date": "d", "commit": "c", "command": "x", "total_s": 60.0,
           "machine": {k: "?" for k in ("cpus", "cpu", "memory_gib", "kernel", "distro",
                                        "python", "bcc")},
           "load": {"start": 0, "end": 0}, "measures": []}
    return set(render.blocks(ROOT / "bench" / "runs" / "x.json", doc)) | {"kernels"}


def marker_problems(text: str, where: str, known: set[str]) -> list[str]:
    """Every opening marker is exact, names a known block, and has its end marker after it
    (before the next opening one); no end marker without an opening one."""
    out: list[str] = []
    opens = [(m.start(), m.group(1), m.group(0)) for m in _OPEN.finditer(text)]
    ends = [(m.start(), m.group(1)) for m in _END.finditer(text)]
    for i, (pos, name, whole) in enumerate(opens):
        if name not in known:
            out.append(f"{where}: unknown rendered block {name!r}")
        if whole != _OPEN_EXACT.format(name):
            out.append(f"{where}: marker {whole!r} is not {_OPEN_EXACT.format(name)!r}")
        nxt = opens[i + 1][0] if i + 1 < len(opens) else len(text)
        if not any(pos < e < nxt and n == name for e, n in ends):
            out.append(f"{where}: rendered:{name} has no end marker")
    for e, n in ends:
        if not any(p < e and name == n for p, name, _ in opens):
            out.append(f"{where}: end rendered:{n} without its opening marker")
    if not out and len(list(render._BLOCK.finditer(text))) != len(opens):
        out.append(f"{where}: bench/render.py does not see every block")
    return out


def now_problems(text: str, where: str) -> list[str]:
    """No heading and no table header says "(now)": a table is of one dated run."""
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = line.startswith("#") or (
            line.startswith("|") and i + 1 < len(lines) and re.match(r"\|\s*-", lines[i + 1]))
        if header and re.search(r"\(now\)|\bnow\b\s*\|", line, re.I):
            out.append(f"{where}:{i + 1}: {line.strip()[:80]}")
    return out


def section(text: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"no section {heading!r}"
    return m.group(1)


def setup_problems(readme: str) -> list[str]:
    """The set-up section's commands are exactly `sudo make demo` and `sudo make test`."""
    sec = section(readme, "Two commands")
    blocks = re.findall(r"```\w*\n(.*?)```", sec, re.S)
    cmds = [line.split("#")[0].strip() for b in blocks for line in b.splitlines()]
    cmds = [c for c in cmds if c]
    want = ["sudo make demo", "sudo make test"]
    return [] if cmds == want else [f"set-up commands are {cmds}, not {want}"]


def outside_blocks(text: str) -> str:
    """The text with rendered blocks' bodies and fenced code taken out."""
    text = render._BLOCK.sub("", text)
    return re.sub(r"```.*?```", "", text, flags=re.S)


def typed_figure_problems(text: str, where: str) -> list[str]:
    """A measured table is rendered, not typed: outside rendered blocks no table has a
    goal/verdict-style header (goal ... met/verdict)."""
    out = []
    for line in outside_blocks(text).splitlines():
        cells = [c.strip().lower() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and "goal" in cells and ({"met", "verdict"} & set(cells)):
            out.append(f"{where}: a goal/verdict table typed by hand: {line.strip()[:80]}")
    return out


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# -- the real files --------------------------------------------------------------------


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_markers_well_formed(path: Path) -> None:
    assert marker_problems(path.read_text(), rel(path), known_blocks()) == []


def test_each_block_is_in_its_file_and_rendered_by_the_script() -> None:
    """Each block sits once in the file bench/render.py rewrites for it, and nowhere else."""
    rendered_files = {rel(p) for p in render.DOCS}
    for path in DOC_FILES:
        names = [m.group(1) for m in _OPEN.finditer(path.read_text())]
        for name in names:
            assert BLOCK_HOME.get(name) == rel(path), f"{rel(path)} holds rendered:{name}"
        if names:
            assert rel(path) in rendered_files, f"{rel(path)} is not in render.DOCS"
    for name, home in BLOCK_HOME.items():
        n = [m.group(1) for m in _OPEN.finditer((ROOT / home).read_text())].count(name)
        assert n == 1, f"{home} has rendered:{name} {n} times"
    assert set(BLOCK_HOME) == known_blocks()


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_no_now_on_a_table(path: Path) -> None:
    assert now_problems(path.read_text(), rel(path)) == []


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_no_goal_table_typed_by_hand(path: Path) -> None:
    assert typed_figure_problems(path.read_text(), rel(path)) == []


def test_readme_setup_is_the_two_commands() -> None:
    assert setup_problems((ROOT / "README.md").read_text()) == []


def test_readme_performance_section_is_only_prose_and_the_rendered_block() -> None:
    perf = section((ROOT / "README.md").read_text(), "Performance")
    assert "<!-- rendered:bench-summary" in perf
    rest = outside_blocks(perf)
    assert not re.search(r"^\|", rest, re.M), "a table typed outside the rendered block"
    assert not re.search(r"\d+(\.\d+)?\s*(x|s|ms|MiB|MB)\b", rest), \
        "a figure typed outside the rendered block"


# -- each check fails on a planted bad text ----------------------------------------------

GOOD = ("<!-- rendered:bench-all (bench/render.py; do not edit) -->\nbody\n"
        "<!-- end rendered:bench-all -->\n")


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (GOOD, None),
        ("<!-- rendered:bench-all (bench/render.py; do not edit) -->\nbody\n", "no end marker"),
        (GOOD.replace("bench-all", "bench-sumary"), "unknown rendered block"),
        (GOOD.replace("(bench/render.py; do not edit) ", ""), "is not"),
        ("text\n<!-- end rendered:kernels -->\n", "without its opening marker"),
        (GOOD.replace("end rendered:bench-all", "end rendered:kernels"), "no end marker"),
    ],
)
def test_marker_check_fails_on_planted_mistakes(text: str, expect: str | None) -> None:
    problems = marker_problems(text, "planted", known_blocks())
    if expect is None:
        assert problems == []
    else:
        assert any(expect in p for p in problems), problems


def test_now_check_fails_on_planted_headers() -> None:
    assert now_problems("### Goals at a glance (now)\n", "p")
    assert now_problems("| goal | status (now) |\n| --- | --- |\n", "p")
    assert now_problems("| goal | now |\n| --- | --- |\n", "p")
    assert not now_problems("The bench now reads the recorder's own VmHWM.\n", "p")
    assert not now_problems("| a | b |\n| --- | --- |\n| x | now met |\n", "p")


def test_setup_check_fails_on_a_third_command() -> None:
    good = "## Two commands\n\n```sh\nsudo make demo    # x\nsudo make test\n```\n\n## Next\n"
    assert setup_problems(good) == []
    assert setup_problems(good.replace("sudo make test\n", "sudo make test\nmake setup\n"))
    assert setup_problems(good.replace("sudo make demo", "make demo"))


def test_typed_table_check_fails_on_a_pasted_results_table() -> None:
    pasted = ("| measure | goal | measured | met |\n| --- | --- | --- | --- |\n"
              "| a | <= 1 | 2 | no |\n")
    assert typed_figure_problems(pasted, "p")
    assert not typed_figure_problems(GOOD.replace("body", pasted.rstrip("\n")), "p")
