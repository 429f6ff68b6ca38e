"""The web UI (FastAPI app + offline static page) and the demo built on it.

The names are imported on first use (module ``__getattr__``), so a submodule that needs
no web framework (``web.ohif``: ``dicomstation viewer status``) imports none.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dicomstation.web.app import create_ui_app
    from dicomstation.web.workstation import Workstation

__all__ = ["Workstation", "create_ui_app"]

_EXPORTS = {"Workstation": "workstation", "create_ui_app": "app"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
