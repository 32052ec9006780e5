"""Profiles: what the analyzer knows about a workload, as data (tracer/profiles/NAME.json).

A profile maps executables, endpoints and cgroups to components, names milestones and phases,
and says where the analysis starts and ends by default. Users write their own (rke2, kubeadm) as
JSON files with the same keys; ``docs/analyze.md`` documents them. ``auto`` picks ``k3s`` when a
k3s executable is in the trace, else ``generic``.

A user profile may start from another (``"extends": "k3s"``) and rename ports and unix paths
everywhere (``"ports": {"6443": 7443}``, ``"paths": {...}``): k3s started with other ports.

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


def _map_value(value: str, ports: dict[str, str], paths: dict[str, str]) -> str:
    """One endpoint pattern or spec value with the profile's port/path renames applied."""
    if value.isdigit():
        return ports.get(value, value)
    if value.startswith("unix:"):
        return "unix:" + paths.get(value[5:], value[5:])
    if value.startswith(("/", "@")):
        return paths.get(value, value)
    host, sep, port = value.rpartition(":")
    if sep and port in ports:
        return f"{host}:{ports[port]}"
    return value


def _map_spec(spec: str, ports: dict[str, str], paths: dict[str, str]) -> str:
    kind, sep, value = spec.partition(":")
    if not sep or kind in ("log", "exec", "exit", "listen-endpoint"):
        return spec
    return f"{kind}:{_map_value(value, ports, paths)}"


def _remap(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """Apply "ports" ({"6443": 7443}) and "paths" ({"/run/k3s/...sock": "/x.sock"}) to every
    endpoint pattern and moment spec, so one profile serves k3s started on other ports/paths.
    Names (milestones, phases) keep the base profile's wording, so runs still compare."""
    raw_ports = data.get("ports") or {}
    raw_paths = data.get("paths") or {}
    if not isinstance(raw_ports, dict) or not isinstance(raw_paths, dict):
        raise UsageError(f'profile {origin}: "ports" and "paths" must be JSON objects')
    ports: dict[str, str] = {}
    for k, v in raw_ports.items():
        if not (str(k).isdigit() and str(v).isdigit() and 0 < int(v) < 65536):
            raise UsageError(f'profile {origin}: "ports" maps port numbers to port numbers ({k})')
        ports[str(k)] = str(int(v))
    paths = {str(k): str(v) for k, v in raw_paths.items()}
    if not ports and not paths:
        return data
    out = dict(data)

    def specs(v: Any) -> list[str]:
        return [_map_spec(str(x), ports, paths) for x in (v or [])]

    for key in ("start", "end"):
        if key in out:
            out[key] = specs(out[key])
    out["endpoints"] = [
        {**e, "endpoint": _map_value(str(e["endpoint"]), ports, paths)}
        for e in out.get("endpoints", [])
    ]
    out["milestones"] = [
        {**m, "cond": _map_spec(str(m["cond"]), ports, paths)} for m in out.get("milestones", [])
    ]
    out["phases"] = [
        {**ph, "start": specs(ph["start"]), "end": specs(ph["end"])} for ph in out.get("phases", [])
    ]
    out["polls"] = [
        {
            **p,
            "endpoint": _map_value(str(p["endpoint"]), ports, paths),
            "ready": specs(p.get("ready")),
        }
        for p in out.get("polls", [])
    ]
    return out


def _extend(data: dict[str, Any], origin: str, depth: int = 0) -> dict[str, Any]:
    """A profile with "extends": NAME|FILE starts from that profile; its own keys replace the
    base's (lists are replaced, not merged)."""
    base_spec = data.get("extends")
    if base_spec is None:
        return data
    if not isinstance(base_spec, str) or depth > 5:
        raise UsageError(f'profile {origin}: "extends" must name one profile (no cycles)')
    base = load(base_spec, _depth=depth + 1).data
    merged = {k: v for k, v in base.items() if k not in ("ports", "paths")}
    merged.update({k: v for k, v in data.items() if k != "extends"})
    return merged


def builtin(name: str) -> Profile:
    text = resources.files("tracer").joinpath("profiles", f"{name}.json").read_text()
    return Profile(name, _validate(json.loads(text), name))


def load(spec: str, *, _depth: int = 0) -> Profile:
    """A built-in profile by name, or a profile JSON file by path (see _extend and _remap)."""
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
    if isinstance(data, dict):
        data = _extend(data, spec, _depth)
    data = _validate(data, spec)
    return Profile(str(data.get("name", path.stem)), _remap(data, spec))


def detect(names_in_trace: set[str]) -> Profile:
    """auto: the first built-in profile whose detect.exe names appear in the trace."""
    for name in BUILTIN:
        p = builtin(name)
        want = (p.data.get("detect") or {}).get("exe") or []
        if any(fnmatchcase(n, pat) for pat in want for n in names_in_trace):
            return p
    return builtin("generic")
