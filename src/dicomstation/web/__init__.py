"""The web UI (FastAPI app + offline static page) and the demo built on it."""

from __future__ import annotations

from dicomstation.web.app import create_ui_app
from dicomstation.web.workstation import Workstation

__all__ = ["Workstation", "create_ui_app"]
