"""The .gopclntab reader against `go tool addr2line` (Go's own reader of the same table) on
real stripped binaries (Debian's etcd and containerd, Go 1.19) and on a program built here by
Go 1.19 and Go 1.27, and the inlined frames against the compiler's own inlining report.

What addr2line prints for a PC: the PHYSICAL function (the one whose code holds the PC, not an
inlined callee) and the file:line of the innermost position (the pcfile/pcln tables record the
inlined callee's line). So it is compared with our outermost frame's function and our depth-0
file:line; the inlined callee names are checked against `go build -gcflags=-m`.

Debian's etcd and containerd are linked by the external linker (cgo): C startup code sits
at the start of .text, before runtime.text. addr2line (1.19 and 1.27 alike) takes the .text
section start as the base of the table's entry offsets, so on such binaries its answers are
for PC + (runtime.text - .text start). The runtime, and this reader, take runtime.text from
the module data. The comparison queries addr2line at PC - shift; that the shift is right is
checked independently: containerd exports its Go functions in .dynsym, and every function
entry's name must equal the .dynsym symbol at that address.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.unit.symbols_fixture import Built, addr2line, build_fixture, toolchain
from tracer.symbols.elf import ElfImage
from tracer.symbols.gopclntab import GoTable

REAL = ["/usr/bin/etcd", "/usr/bin/containerd"]
AGREE = 0.999


def _sample_pcs(t: GoTable, rnd: random.Random, inner_per_func: int) -> list[int]:
    """Every function entry, plus PCs inside each function's code (markers without code,
    such as Go 1.24+'s go:textfipsstart, have no line table: no PC can run there)."""
    pcs: list[int] = []
    for i in range(len(t.entries)):
        entry, end = t.function_span(i)
        if end == entry:
            continue
        pcs.append(entry)
        for _ in range(inner_per_func):
            if end > entry + 1:
                pcs.append(rnd.randrange(entry + 1, end))
    return pcs


def _compare(t: GoTable, go: str, binary: str, pcs: list[int], shift: int) -> tuple[int, list[str]]:
    ref = addr2line(go, Path(binary), [pc - shift for pc in pcs])
    bad: list[str] = []
    for pc, (fn, pos) in zip(pcs, ref):
        frames = t.resolve_one(pc)
        ours = (frames[-1].function, f"{frames[0].file}:{frames[0].line}") if frames else None
        theirs = None if (fn, pos) == ("?", "?:0") else (fn, pos)
        if ours != theirs:
            bad.append(f"{pc:#x}: ours {ours} addr2line {theirs}")
    return len(pcs), bad


def _elide_type_args(name: str) -> str:
    """The .gopclntab spelling of a generic instantiation: type arguments as "[...]"."""
    out: list[str] = []
    depth = 0
    for ch in name:
        if ch == "[":
            if depth == 0:
                out.append("[...]")
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _text_shift(img: ElfImage, t: GoTable) -> int:
    return int(t.entries[0]) - img.sections[".text"].addr


@pytest.mark.slow
@pytest.mark.parametrize("path", REAL)
def test_real_binaries_agree_with_addr2line(path: str) -> None:
    go = toolchain("1.19")
    img = ElfImage(path)
    t = GoTable.from_elf(img)
    assert t.layout == "1.18"  # Go 1.19 writes the 1.18 layout
    pcs = _sample_pcs(t, random.Random(23), inner_per_func=1)
    assert len(pcs) > 20_000
    n, bad = _compare(t, go, path, pcs, _text_shift(img, t))
    assert 1 - len(bad) / n >= AGREE, f"{len(bad)} of {n} disagree, e.g. {bad[:5]}"


@pytest.mark.slow
def test_containerd_function_entries_match_its_dynsym() -> None:
    """Independent of addr2line: containerd's .dynsym names its Go functions."""
    img = ElfImage("/usr/bin/containerd")
    t = GoTable.from_elf(img)
    syms = img.function_symbols(".dynsym")
    assert syms is not None
    starts = set(int(x) for x in syms.starts)
    checked = 0
    bad = []
    for i in range(len(t.entries)):
        entry = int(t.entries[i])
        if entry not in starts:
            continue
        dyn = syms.lookup(entry) or ""
        # The linker's own spellings in .dynsym: assembly functions carry their ABI
        # (".abi0"), and type-equality functions are hashed ("type..TcEUsQoV").
        if dyn.startswith("type.."):
            continue
        checked += 1
        if _elide_type_args(dyn.removesuffix(".abi0")) != t.function_name(i):
            bad.append((hex(entry), dyn, t.function_name(i)))
    assert checked > 0.9 * len(t.entries)
    assert len(bad) / checked <= 1 - AGREE, bad[:5]
    # and the first Go function sits where the module data says runtime.text is, past .text
    assert _text_shift(img, t) > 0


@pytest.fixture(scope="module", params=["1.19", "1.27"])
def fixture_binary(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Built:
    return build_fixture(request.param, tmp_path_factory.mktemp(f"go{request.param}"))


def test_fixture_agrees_with_addr2line(fixture_binary: Built) -> None:
    b = fixture_binary
    img = ElfImage(str(b.binary))
    t = GoTable.from_elf(img)
    assert t.layout == ("1.18" if b.version == "1.19" else "1.20")
    assert img.go_version() == f"go{b.version}" or (img.go_version() or "").startswith(
        f"go{b.version}."
    )
    assert _text_shift(img, t) == 0  # internal linking: runtime.text is the start of .text
    pcs = _sample_pcs(t, random.Random(7), inner_per_func=3)
    assert len(pcs) > 3000
    n, bad = _compare(t, b.go, str(b.binary), pcs, 0)
    assert 1 - len(bad) / n >= AGREE, f"{len(bad)} of {n} disagree, e.g. {bad[:5]}"


def test_padding_after_a_function_is_named_as_addr2line_names_it(fixture_binary: Built) -> None:
    """A PC in the alignment padding after a function's code (no line there) is named, as by
    `go tool addr2line`, for the function before it, line unknown. A stack's frame lands
    there when its return address is a signal frame's restorer (the next function's entry) and
    the walk takes PC - 1 (a CI run's trace: runtime.cgoSigtramp at PC 0x463eff, named by
    nothing before)."""
    from tracer.symbols.binary import BinarySymbols

    b = fixture_binary
    t = GoTable.from_elf(ElfImage(str(b.binary)))
    sym = BinarySymbols(str(b.binary))
    rnd = random.Random(11)
    pcs = []
    for i in range(len(t.entries) - 1):
        _, end = t.function_span(i)
        if int(t.entries[i + 1]) > end > int(t.entries[i]):
            pcs.append(rnd.randrange(end, int(t.entries[i + 1])))
    assert len(pcs) > 500
    ref = addr2line(b.go, b.binary, pcs)
    bad = []
    for pc, (fn, pos) in zip(pcs, ref):
        assert not t.resolve_one(pc)  # the line table says nothing there
        got = sym.resolve_vaddr(pc)
        if not got or got[-1].function != fn or got[0].line != 0:
            bad.append(f"{pc:#x}: ours {got} addr2line {fn} {pos}")
    assert not bad, bad[:5]


def test_fixture_inlined_frames_match_the_compilers_report(fixture_binary: Built) -> None:
    """Every PC of main.work whose innermost position lies in pkgb is named for the pkgb
    function the compiler says it inlined there, with main.work outermost at that call site."""
    b = fixture_binary
    img = ElfImage(str(b.binary))
    t = GoTable.from_elf(img)
    assert t.gofunc, "module data (gofunc) not found: no inline tree"
    main_calls = {ln: fns for (f, ln), fns in b.inlined_at.items() if f == "main.go"}
    assert set().union(*main_calls.values()) >= {"pkgb.Mix", "pkgb.Twice"}, b.inlined_at
    work = next(i for i in range(len(t.entries)) if t.function_name(i) == "main.work")
    entry, end = t.function_span(work)
    seen_depths: set[int] = set()
    inlined_pcs = 0
    for pc in range(entry, end):
        frames = t.resolve_one(pc)
        assert frames[-1].function == "main.work"
        if len(frames) == 1:
            continue
        inlined_pcs += 1
        seen_depths.add(len(frames))
        outer = frames[-1]
        assert outer.file.endswith("main.go")
        # the call site in main.work is one the compiler reports, and names the next frame
        callee = frames[-2].function.replace("example.com/fixture/", "")
        assert callee in main_calls.get(outer.line, set()), (hex(pc), frames)
        for inner in frames[:-1]:
            assert inner.function.startswith("example.com/fixture/pkgb.")
            assert inner.file.endswith("pkgb/b.go")
        if len(frames) == 3:  # Mix inlined into Twice inlined into work
            assert frames[0].function.endswith("pkgb.Mix")
            assert frames[1].function.endswith("pkgb.Twice")
            assert "Mix" in b.inlined_at.get(("b.go", frames[1].line), set()), (
                hex(pc),
                frames,
                b.inlined_at,
            )
    assert inlined_pcs > 10
    assert seen_depths == {2, 3}
