"""The stack component rules (issue 23 part 3): package path prefix -> component, shared code
skipped to the first component frame from the top."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from tracer._errors import UsageError
from tracer.symbols import components
from tracer.symbols.components import from_profile, package_of

K3S = components.builtin("k3s")
K3S_EXE = ["k3s-server"]


def _k3s_profile() -> dict[str, object]:
    text = resources.files("tracer").joinpath("profiles", "k3s.json").read_text()
    data: dict[str, object] = json.loads(text)
    return data


def test_component_names_are_the_profiles_own() -> None:
    data = _k3s_profile()
    known = {c["component"] for key in ("components", "endpoints", "cgroups")
             for c in data[key]}  # type: ignore[attr-defined]  # fmt: skip
    used = {r.component for r in K3S.rules}
    # network-policy (kube-router inside k3s) is the one name the profile had no use for yet
    assert used - known == {"network-policy"}
    want = {"kubelet", "kube-apiserver", "kube-scheduler", "kube-controller-manager",
            "kube-proxy", "cloud-controller-manager", "kine", "etcd", "k3s", "cni"}  # fmt: skip
    assert want <= used


@pytest.mark.parametrize(
    ("function", "package"),
    [
        ("k8s.io/kubernetes/pkg/kubelet.(*Kubelet).Run", "k8s.io/kubernetes/pkg/kubelet"),
        ("k8s.io/kubernetes/pkg/kubelet/cm.(*x).f.func1", "k8s.io/kubernetes/pkg/kubelet/cm"),
        ("gopkg.in/yaml%2ev2.(*parser).parse", "gopkg.in/yaml%2ev2"),
        ("main.main", "main"),
        ("runtime.futex", "runtime"),
        ("net/http.(*Server).Serve", "net/http"),
        ("memcpy", "memcpy"),
    ],
)
def test_package_of(function: str, package: str) -> None:
    assert package_of(function) == package


@pytest.mark.parametrize(
    ("stack", "component", "depth"),
    [
        # shared runtime and client code skipped to the kubelet frame
        (["runtime.futex", "k8s.io/client-go/rest.(*Request).Do",
          "k8s.io/kubernetes/pkg/kubelet.(*Kubelet).syncLoop"], "kubelet", 2),
        # an inlined shared frame on top of an apiserver one
        (["k8s.io/apimachinery/pkg/util/wait.Until", "k8s.io/apiserver/pkg/server.(*x).Run",
          "github.com/k3s-io/k3s/pkg/daemons/control.server"], "kube-apiserver", 1),
        # "controlplane" is not under "controller": prefixes stop at a "/"
        (["k8s.io/kubernetes/pkg/controlplane/apiserver.New"], "kube-apiserver", 0),
        (["k8s.io/kubernetes/pkg/controller/garbagecollector.(*GC).Run"],
         "kube-controller-manager", 0),
        # etcd's client is shared, its server is etcd
        (["go.etcd.io/etcd/client/v3.(*kv).Get", "go.etcd.io/etcd/server/v3/etcdserver.x"],
         "etcd", 1),
        (["github.com/mattn/go-sqlite3.(*SQLiteStmt).exec", "database/sql.(*DB).Exec"], "kine", 0),
        # an unknown third-party library is skipped like shared code
        (["github.com/prometheus/client_golang/prometheus.(*Registry).Gather",
          "github.com/example/lib.F", "k8s.io/kubernetes/pkg/scheduler.(*Scheduler).Run"],
         "kube-scheduler", 2),
        (["github.com/flannel-io/flannel/pkg/backend/vxlan.New"], "cni", 0),
        (["main.main"], "k3s", 0),
        (["runtime.goexit"], None, None),
        (["go.etcd.io/etcd/client/v3.(*Client).Get", "runtime.main"], None, None),
    ],
)  # fmt: skip
def test_k3s_stacks(stack: list[str], component: str | None, depth: int | None) -> None:
    got = K3S.component_of(stack, K3S_EXE)
    if component is None:
        assert got is None
    else:
        assert got is not None and (got.component, got.depth, got.function) == (
            component, depth, stack[depth or 0])  # fmt: skip


def test_main_is_k3s_only_in_a_k3s_binary() -> None:
    assert K3S.component_of(["main.main"], ["k3s"]) is not None
    assert K3S.component_of(["main.main"], ["etcd"]) is None
    assert K3S.component_of(["main.main"], []) is None


def test_generic_profile_names_no_component() -> None:
    generic = components.builtin("generic")
    assert generic.rules == []
    assert generic.component_of(["k8s.io/kubernetes/pkg/kubelet.x", "main.main"], ["k3s"]) is None
    assert "runtime" in generic.shared


def test_user_profile_rules_and_shared() -> None:
    rules = from_profile(
        {"stack_components": {
            "rules": [{"prefix": "example.com/fixture/pkgb", "component": "mixer"},
                      {"prefix": "example.com/fixture", "component": "fixture"}],
            "shared": ["runtime", "example.com/fixture/pkgb/util"]}}
    )  # fmt: skip
    assert rules.component_of(["example.com/fixture/pkgb.Mix", "main.work"]) == (
        "mixer", 0, "example.com/fixture/pkgb.Mix")  # fmt: skip
    # the longest prefix decides: a shared sub-package beats its parent's rule
    assert rules.component_of(["example.com/fixture/pkgb/util.F", "example.com/fixture.G"]) == (
        "fixture", 1, "example.com/fixture.G")  # fmt: skip
    assert from_profile({}).rules == []


@pytest.mark.parametrize(
    "bad",
    [
        {"stack_components": []},
        {"stack_components": {"rules": [{"prefix": "x"}]}},
        {"stack_components": {"rules": [{"prefix": "x", "component": "y", "exe": "k3s"}]}},
        {"stack_components": {"shared": "runtime"}},
    ],
)
def test_malformed_rules_are_a_usage_error(bad: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="stack_components"):
        from_profile(bad, "my.json")


def test_symbols_sits_below_collector_and_analyzer() -> None:
    """tracer/symbols imports neither the collector, the analyzer nor the report (both the
    recorder and the analyzer call it): only tracer._errors and tracer.schema of the project."""
    import ast
    from pathlib import Path

    pkg = Path(components.__file__).parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if n.startswith("tracer") and not n.startswith("tracer.symbols"):
                    assert n in ("tracer", "tracer._errors", "tracer.schema"), (path.name, n)
