"""Import pyroute2 submodules without running the package's ``__init__`` first.

``pyroute2/__init__.py`` (0.9) imports every netlink family the library has (conntrack,
ipset, nftables, nl80211, wireguard, NDB with sqlite3, the asyncio IPRoute with ssl, ...),
and Python runs a package's ``__init__`` before any of its submodules. The recorder decodes
rtnetlink with pyroute2's marshal and three message classes; through the package that import
cost 10.6 MiB of resident memory and 84 ms (229 modules) here, and seconds in a TCG VM where
the recorder's start holds up a boot. The submodules it uses need ~0.5 MiB and ~14 ms.

:func:`package_init_deferred` puts the ``pyroute2`` package object into ``sys.modules``
created from its own spec but not executed, so ``import pyroute2.netlink.x`` finds the
package's path and loads only what it asks for. The package's public names are not lost:
the first lookup of a name that is not a submodule (``from pyroute2 import IPRoute``,
``pyroute2.NDB``) runs the package's real ``__init__`` then, in that same module object, and
returns the name from it (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

PACKAGE = "pyroute2"
_lock = threading.Lock()


def _deferred_package() -> ModuleType:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{PACKAGE} is not installed as a package")
    module = importlib.util.module_from_spec(spec)  # __path__, __spec__; __init__ not run
    loader = spec.loader
    done = False

    def complete(name: str) -> object:
        nonlocal done
        if name.startswith("__") or _is_submodule(module, name):
            # dunder probes (inspect, pickle, ...) and submodules (import machinery, which
            # then imports them) must not pull in the whole package
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        with _lock:
            if not done:
                done = True
                del module.__dict__["__getattr__"]
                loader.exec_module(module)  # the real __init__, in this module object
        return getattr(module, name)

    module.__dict__["__getattr__"] = complete
    return module


def _is_submodule(package: ModuleType, name: str) -> bool:
    from importlib.machinery import PathFinder

    return PathFinder.find_spec(f"{PACKAGE}.{name}", list(package.__path__)) is not None


@contextlib.contextmanager
def package_init_deferred() -> Iterator[None]:
    """Within: ``import pyroute2.<submodule>`` runs no more than that submodule's imports.
    A no-op when pyroute2 is already imported (its ``__init__`` has run)."""
    with _lock:
        if PACKAGE not in sys.modules:
            sys.modules[PACKAGE] = _deferred_package()
    yield
