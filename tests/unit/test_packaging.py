"""The wheel is enough to record: a plain `pip install` ships the BPF C sources.

The recorder compiles bpf/*.c at run time (BCC). They live next to tracer/ in the source tree,
and pyproject.toml maps them into the wheel as tracer/bpf/. This builds a real wheel (pip,
setuptools, from a copy of the tree so nothing is written into the checkout), checks that it
holds every BPF source and header and every module of tracer/, and then imports the recorder's
probe module FROM THE UNPACKED WHEEL (not the checkout) to check that it finds its sources there
and can assemble the program BCC compiles.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("tracer", "bpf"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = list((tmp / "dist").glob("k3sprof-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_wheel_holds_every_bpf_source_and_header(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    bpf = sorted(p.name for p in (ROOT / "bpf").iterdir() if p.suffix in (".c", ".h"))
    assert "k3sprof.bpf.c" in bpf and "events.h" in bpf
    missing = [n for n in bpf if f"tracer/bpf/{n}" not in names]
    assert not missing, f"not in {wheel.name}: {missing}"
    # and every module and data file of tracer/ (pyproject.toml lists the packages by hand)
    for p in sorted((ROOT / "tracer").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            rel = p.relative_to(ROOT).as_posix()
            assert rel in names, f"{rel} is not in {wheel.name}: add its package to pyproject.toml"


def test_the_recorder_finds_its_sources_in_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S: no site-packages, so the checkout's editable install cannot answer `import tracer`;
    # probes.py needs only the standard library to be imported
    code = (
        "import json, tracer.collector.probes as p\n"
        "print(json.dumps({'file': p.__file__, 'dir': str(p.BPF_DIR), 'src': p.source()}))\n"
    )
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env={"PYTHONPATH": str(site)}, timeout=60, check=False)
    assert r.returncode == 0, r.stderr

    out = json.loads(r.stdout)
    assert Path(out["file"]).is_relative_to(site), out["file"]
    bpf_dir = Path(out["dir"])
    assert bpf_dir == site / "tracer" / "bpf"
    # the program text BCC gets: the main file with every concern file spliced in
    for p in sorted((ROOT / "bpf").glob("*.bpf.c")):
        if p.name != "k3sprof.bpf.c":
            assert p.read_text() in out["src"], f"{p.name} not spliced into the program"
    # what stays #included (headers) is there for BCC's -I<BPF_DIR>
    for p in bpf_dir.iterdir():
        for inc in re.findall(r'^\s*#include "([^"]+)"', p.read_text(), re.M):
            assert (bpf_dir / inc).is_file(), f"{p.name} includes {inc}, not in the wheel"


def test_the_source_tree_still_uses_bpf_next_to_tracer() -> None:
    from tracer.collector import probes

    assert probes.BPF_DIR == ROOT / "bpf"
