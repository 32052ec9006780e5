"""Which component of a Go process a stack belongs to: package path prefix -> component.

A profile's ``stack_components`` key (tracer/profiles/k3s.json; docs/symbols.md) holds::

    {"rules":  [{"prefix": "k8s.io/kubernetes/pkg/kubelet", "component": "kubelet"},
                {"prefix": "main", "component": "k3s", "exe": ["k3s", "k3s-server"]}, ...],
     "shared": ["runtime", "sync", "net", "k8s.io/client-go", ...]}

A frame's package is its function name up to the first "." after the last "/"
("k8s.io/kubernetes/pkg/kubelet/cm.(*x).f" -> "k8s.io/kubernetes/pkg/kubelet/cm"). A prefix
matches the package itself and every package below it ("net" matches "net/http", not
"netip"). The longest matching prefix among rules and shared decides a frame: shared code is
skipped, a rule names the component, and a frame that matches nothing (a third-party library a
component calls) is skipped too. The stack's component is the first rule frame from the top
(innermost); None means none matched: the caller uses the process's exe component. A rule with
"exe" applies only in processes of those executable names (fnmatch globs): "main" is k3s only
in a k3s binary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from importlib import resources
from typing import Any, NamedTuple

from tracer._errors import UsageError

#: Used when a profile has no "stack_components" (the generic profile): the Go standard
#: library's and the common RPC/Kubernetes client code's packages are shared, and there are
#: no component rules, so every stack is its process's own.
DEFAULT_SHARED: tuple[str, ...] = (
    "runtime",
    "internal",
    "sync",
    "syscall",
    "os",
    "io",
    "bufio",
    "context",
    "time",
    "net",
    "crypto",
    "encoding",
    "reflect",
    "fmt",
    "strings",
    "bytes",
    "strconv",
    "sort",
    "errors",
    "math",
    "unicode",
    "compress",
    "vendor",
    "golang.org/x",
    "google.golang.org/grpc",
    "google.golang.org/protobuf",
    "github.com/golang/protobuf",
    "github.com/gogo/protobuf",
)


class StackComponent(NamedTuple):
    """The component of a stack, and which frame (depth: innermost = 0) decided it."""

    component: str
    depth: int
    function: str


@dataclass(frozen=True)
class ComponentRule:
    prefix: str
    component: str
    exe: tuple[str, ...] = ()


@dataclass
class StackComponents:
    """The rules of one profile. `component_of(functions, exe_names)` is the whole API."""

    rules: list[ComponentRule] = field(default_factory=list)
    shared: tuple[str, ...] = DEFAULT_SHARED
    _cache: dict[tuple[str, tuple[str, ...]], str | None] = field(default_factory=dict, repr=False)

    def frame_component(self, function: str, exe_names: Sequence[str] = ()) -> str | None:
        """The component one frame's function belongs to (None: shared or unknown)."""
        key = (function, tuple(exe_names))
        if key in self._cache:
            return self._cache[key]
        pkg = package_of(function)
        best_len = -1
        best: str | None = None
        for s in self.shared:
            if _under(pkg, s) and len(s) > best_len:
                best_len, best = len(s), None
        for r in self.rules:
            if len(r.prefix) <= best_len or not _under(pkg, r.prefix):
                continue
            if r.exe and not any(fnmatchcase(n, pat) for pat in r.exe for n in exe_names):
                continue
            best_len, best = len(r.prefix), r.component
        self._cache[key] = best
        return best

    def component_of(
        self, functions: Iterable[str], exe_names: Sequence[str] = ()
    ) -> StackComponent | None:
        """The first component frame from the top of a stack (function names, innermost
        first, inlined frames included), else None (then the process's exe component)."""
        for i, fn in enumerate(functions):
            c = self.frame_component(fn, exe_names)
            if c is not None:
                return StackComponent(c, i, fn)
        return None


def package_of(function: str) -> str:
    """The package path of a Go function name ("a/b/c.(*T).m" -> "a/b/c"); a C symbol is
    its own name."""
    slash = function.rfind("/")
    dot = function.find(".", slash + 1)
    return function[:dot] if dot > 0 else function


def _under(pkg: str, prefix: str) -> bool:
    prefix = prefix.rstrip("./")
    return pkg == prefix or pkg.startswith(prefix + "/")


def from_profile(data: Mapping[str, Any], origin: str = "profile") -> StackComponents:
    """The rules of a profile's JSON data (the dict a profile file holds). Raises UsageError
    for a malformed "stack_components"."""
    spec = data.get("stack_components")
    if spec is None:
        return StackComponents()
    if not isinstance(spec, Mapping):
        raise UsageError(f'{origin}: "stack_components" must be an object with rules, shared')
    rules: list[ComponentRule] = []
    for r in spec.get("rules") or []:
        if (
            not isinstance(r, Mapping)
            or not isinstance(r.get("prefix"), str)
            or not isinstance(r.get("component"), str)
        ):
            raise UsageError(f'{origin}: each "stack_components" rule needs prefix and component')
        exe = r.get("exe") or []
        if not isinstance(exe, list) or not all(isinstance(x, str) for x in exe):
            raise UsageError(f'{origin}: "exe" of a stack_components rule must list names')
        rules.append(ComponentRule(r["prefix"], r["component"], tuple(exe)))
    shared = spec.get("shared")
    if shared is None:
        shared_t = DEFAULT_SHARED
    elif isinstance(shared, list) and all(isinstance(x, str) for x in shared):
        shared_t = tuple(shared)
    else:
        raise UsageError(f'{origin}: "shared" of stack_components must list package prefixes')
    return StackComponents(rules, shared_t)


def builtin(name: str) -> StackComponents:
    """The rules of a built-in profile (tracer/profiles/NAME.json)."""
    text = resources.files("tracer").joinpath("profiles", f"{name}.json").read_text()
    return from_profile(json.loads(text), f"profile {name}")
