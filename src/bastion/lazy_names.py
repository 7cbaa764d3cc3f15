"""Public names of a package imported on first use (PEP 562), for ``__init__`` modules.

A command such as ``bastion kill`` runs ``bastion/__init__.py`` and ``bastion/store/__init__.py``
before anything else; importing every name they re-export would import the runner, the console's
server and SQLAlchemy with them. :func:`lazy_names` gives such a package the module-level
``__getattr__`` and ``__dir__`` that import a name's module the first time it is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, namespace: dict[str, Any], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose names live in the modules ``where``
    maps them to; a name once imported is stored in ``namespace`` (the package's globals), so
    later lookups never reach ``__getattr__`` again."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
