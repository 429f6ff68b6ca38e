"""Import a third-party module once without the notices it warns when imported.

Some libraries warn on import about things a dicomstation user cannot act on:
``nibabel.nicom`` that its DICOM *readers* are experimental (we use only its CSA
header parser), Authlib that it prefers another HTTP client (and ``authlib.deprecate``
adds an "always" filter for its own warnings to the process's filters). Silencing them
needs ``warnings.catch_warnings``, which swaps the warnings module's process-wide
filters and ``showwarning`` and is not thread-safe: so :func:`import_quietly` does it
only for the first import of the module in the process, under a lock; every later call
returns the module from ``sys.modules`` without touching the warnings state. Filters a
library adds while it is imported here are removed with the block.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["import_quietly"]

_LOCK = threading.Lock()


def import_quietly(
    name: str, category: type[Warning] = UserWarning, *, first: Sequence[str] = ()
) -> ModuleType:
    """``importlib.import_module(name)``, its ``category`` warnings ignored the first time.

    ``first``: modules to import inside the block before the filter is set (a module
    that itself adds a filter for ``category`` when imported, which would otherwise
    come before ours).
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    with _LOCK:
        module = sys.modules.get(name)
        if module is None:
            with warnings.catch_warnings():
                for other in first:
                    importlib.import_module(other)
                warnings.simplefilter("ignore", category)
                module = importlib.import_module(name)
    return module
