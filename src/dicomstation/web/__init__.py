"""The web UI (FastAPI app + offline static page) and the demo built on it.

The names are imported on first use (module ``__getattr__``), so a submodule that needs
no web framework (``web.ohif``: ``dicomstation viewer status``) imports none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dicomstation.web.app import create_ui_app
    from dicomstation.web.workstation import Workstation

__all__ = ["Workstation", "create_ui_app"]

_EXPORTS = {"Workstation": "workstation", "create_ui_app": "app"}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
