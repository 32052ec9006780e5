"""`k3sprof doctor`'s "headers used by bcc": BCC's own rule for which header tree it compiles
with (tracer/collector/doctor.py bcc_header_tree), on directory layouts made here."""

from __future__ import annotations

from pathlib import Path

from tracer.collector.doctor import bcc_header_tree


def _headers(root: Path, name: str, kconfig: bool) -> Path:
    d = root / "usr/src" / name
    (d / "include/linux").mkdir(parents=True)
    if kconfig:
        (d / "include/linux/kconfig.h").write_text("")
    return d


def test_debian_split_headers_are_used_through_the_source_link(tmp_path: Path) -> None:
    arch = _headers(tmp_path, "linux-headers-6.1.0-57-amd64", kconfig=False)
    common = _headers(tmp_path, "linux-headers-6.1.0-57-common", kconfig=True)
    kdir = tmp_path / "lib/modules/6.1.0-57-amd64"
    kdir.mkdir(parents=True)
    (kdir / "build").symlink_to(arch)
    (kdir / "source").symlink_to(common)
    assert bcc_header_tree(kdir) == (f"{common} + {arch}", "")


def test_build_link_alone_of_split_headers_is_not_used(tmp_path: Path) -> None:
    arch = _headers(tmp_path, "linux-headers-6.1.0-57-amd64", kconfig=False)
    kdir = tmp_path / "lib/modules/6.1.0-57-amd64"
    kdir.mkdir(parents=True)
    (kdir / "build").symlink_to(arch)
    tree, fix = bcc_header_tree(kdir)
    assert tree.startswith("/sys/kernel/kheaders.tar.xz") and "NOT these headers" in tree
    assert fix == (f"sudo ln -sfn /usr/src/linux-headers-6.1.0-57-common {kdir / 'source'} "
                   "(Debian's split headers)")


def test_a_full_build_tree_is_used_alone(tmp_path: Path) -> None:
    full = _headers(tmp_path, "linux-6.8", kconfig=True)
    kdir = tmp_path / "lib/modules/6.8.0"
    kdir.mkdir(parents=True)
    (kdir / "build").symlink_to(full)
    assert bcc_header_tree(kdir) == (str(full), "")
