"""Lazy package exports: a package's public names imported from their modules on first use.

A package ``__init__`` lists ``name -> module`` in a table and binds the two
module hooks of PEP 562 made here::

    __getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

``from dicomstation.export import SegExporter`` then imports
``dicomstation.export.seg`` only (and caches the name in the package), so a
command imports only what it uses (start-up, issue 18). Type checkers see the
names through the package's ``if TYPE_CHECKING:`` imports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package with lazily imported names.

    Parameters
    ----------
    namespace : MutableMapping
        The package's ``globals()``; a name is cached there once imported.
    exports : Mapping
        Public name -> the package's submodule (relative name) defining it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)`` to bind at the package's module level.
    """
    package = str(namespace["__name__"])

    def module_getattr(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def module_dir() -> list[str]:
        return sorted({*namespace, *exports})

    return module_getattr, module_dir
