"""User profiles that extend a built-in one and move its ports/paths (k3s on other ports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracer._errors import UsageError
from tracer.analyzer import profiles


def write(tmp_path: Path, data: object) -> str:
    p = tmp_path / "p.json"
    p.write_text(json.dumps(data))
    return str(p)


def test_extends_k3s_with_other_ports_and_socket_path(tmp_path: Path) -> None:
    prof = profiles.load(write(tmp_path, {
        "name": "mine", "extends": "k3s",
        "ports": {"6443": 7443, "6444": 7444, "10259": 20259},
        "paths": {"/run/k3s/containerd/containerd.sock": "/tmp/c.sock"},
    }))
    assert prof.name == "mine"
    assert prof.endpoint_info("0.0.0.0:7443")["component"] == "supervisor"  # type: ignore[index]
    assert prof.endpoint_info("127.0.0.1:7444")["component"] == "kube-apiserver"  # type: ignore[index]
    assert prof.endpoint_info("127.0.0.1:6443") is None
    assert prof.endpoint_info("unix:/tmp/c.sock")["component"] == "containerd"  # type: ignore[index]
    assert "listen:20259" in prof.entries("end") and "listen:10250" in prof.entries("end")
    api = next(p for p in prof.entries("phases") if p["name"] == "API server start -> ready")
    assert api["start"] == ["listen:7444", "log:Running kube-apiserver"]
    assert api["end"] == ["poll-end:7443"] and api["pick"] == "first-listed"
    assert prof.poll_rule("127.0.0.1:7443") is not None
    assert {"name": "containerd socket listening", "cond": "listen:/tmp/c.sock"} in prof.entries(
        "milestones")
    # the built-in itself is untouched
    assert profiles.builtin("k3s").endpoint_info("127.0.0.1:6444") is not None


def test_bad_extends_and_ports_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown profile"):
        profiles.load(write(tmp_path, {"name": "x", "extends": "nope"}))
    with pytest.raises(UsageError, match="ports"):
        profiles.load(write(tmp_path, {"name": "x", "extends": "k3s", "ports": {"6443": "abc"}}))
