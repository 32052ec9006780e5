"""Profiles: what the analyzer knows about a workload, as data (tracer/profiles/NAME.json).

A profile maps executables, endpoints and cgroups to components, names milestones and phases,
and says where the analysis starts and ends by default. Users write their own (rke2, kubeadm) as
JSON files with the same keys; ``docs/analyze.md`` documents them. ``auto`` picks ``k3s`` when a
k3s executable is in the trace, else ``generic``.

Endpoint patterns: ``"PORT"`` (a TCP port on any address), ``"ADDR:PORT"``, ``"[V6]:PORT"``,
``"unix:PATH"`` (fnmatch globs allowed in PATH and in exe names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any

from tracer._errors import UsageError

BUILTIN = ("k3s", "generic")
_LIST_KEYS = (
    "start",
    "end",
    "components",
    "module_helpers",
    "endpoints",
    "cgroups",
    "milestones",
    "polls",
    "phases",
)


@dataclass
class Profile:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    _component_cache: dict[tuple[str, ...], str | None] = field(default_factory=dict, repr=False)

    def entries(self, key: str) -> list[Any]:
        v = self.data.get(key) or []
        return list(v)

    def component_for(self, names: list[str]) -> str | None:
        """The component of a process that went by these names (comm, exec basenames)."""
        key = tuple(names)
        if key not in self._component_cache:
            self._component_cache[key] = self._component_for(names)
        return self._component_cache[key]

    def _component_for(self, names: list[str]) -> str | None:
        for c in self.entries("components"):
            for pat in c.get("exe") or []:
                if any(fnmatchcase(n, pat) for n in names):
                    return str(c["component"])
        return None

    def component_for_cgroup(self, path: str | None, unit: str | None) -> str | None:
        for c in self.entries("cgroups"):
            m = str(c.get("match", ""))
            if m and ((unit and m in unit) or (path and m in path)):
                return str(c["component"])
        return None

    def endpoint_info(self, endpoint: str | None) -> dict[str, Any] | None:
        """The profile's entry (component, label) for a concrete endpoint text."""
        if not endpoint:
            return None
        for e in self.entries("endpoints"):
            if endpoint_matches(str(e["endpoint"]), endpoint):
                return dict(e)
        return None

    def is_module_helper(self, names: list[str]) -> bool:
        return any(fnmatchcase(n, pat) for pat in self.entries("module_helpers") for n in names)

    def poll_rule(self, endpoint: str | None) -> dict[str, Any] | None:
        if not endpoint:
            return None
        for p in self.entries("polls"):
            if endpoint_matches(str(p["endpoint"]), endpoint):
                return dict(p)
        return None


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """("127.0.0.1", 6443) from "127.0.0.1:6443", ("::1", 2379) from "[::1]:2379";
    ("unix:/x", None) for unix endpoints."""
    if endpoint.startswith("unix:"):
        return endpoint, None
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit():
        return endpoint, None
    return host.strip("[]"), int(port)


def endpoint_matches(pattern: str, endpoint: str) -> bool:
    if pattern.isdigit():
        return split_endpoint(endpoint)[1] == int(pattern)
    if pattern.startswith("unix:"):
        return endpoint.startswith("unix:") and fnmatchcase(endpoint, pattern)
    ph, pp = split_endpoint(pattern)
    eh, ep = split_endpoint(endpoint)
    return pp is not None and pp == ep and fnmatchcase(eh, ph)


def _validate(data: Any, origin: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise UsageError(f'profile {origin}: not a k3sprof profile (a JSON object with a "name")')
    for k in _LIST_KEYS:
        if k in data and not isinstance(data[k], list):
            raise UsageError(f'profile {origin}: "{k}" must be a list')
    for c in data.get("components", []):
        if not isinstance(c, dict) or "component" not in c:
            raise UsageError(f'profile {origin}: each component needs a "component" name')
    for e in data.get("endpoints", []):
        if not isinstance(e, dict) or "endpoint" not in e:
            raise UsageError(f'profile {origin}: each endpoint needs an "endpoint" pattern')
    for ph in data.get("phases", []):
        if not isinstance(ph, dict) or not {"name", "start", "end"} <= set(ph):
            raise UsageError(f'profile {origin}: each phase needs "name", "start" and "end"')
    return data


def builtin(name: str) -> Profile:
    text = resources.files("tracer").joinpath("profiles", f"{name}.json").read_text()
    return Profile(name, _validate(json.loads(text), name))


def load(spec: str) -> Profile:
    """A built-in profile by name, or a profile JSON file by path."""
    if spec in BUILTIN:
        return builtin(spec)
    path = Path(spec)
    if not path.exists():
        raise UsageError(
            f"unknown profile {spec!r}: use auto, {', '.join(BUILTIN)}, or a profile JSON file"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"profile {spec}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"profile {spec}: invalid JSON ({e.msg} at line {e.lineno})") from None
    return Profile(
        str(data.get("name", path.stem)) if isinstance(data, dict) else path.stem,
        _validate(data, spec),
    )


def detect(names_in_trace: set[str]) -> Profile:
    """auto: the first built-in profile whose detect.exe names appear in the trace."""
    for name in BUILTIN:
        p = builtin(name)
        want = (p.data.get("detect") or {}).get("exe") or []
        if any(fnmatchcase(n, pat) for pat in want for n in names_in_trace):
            return p
    return builtin("generic")
