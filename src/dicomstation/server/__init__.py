"""DICOMweb server over the local database (QIDO-RS, WADO-RS, STOW-RS), as FastAPI routers.

Like Slicer's WebServer module, it lets OHIF, dicomweb-client or another
dicomstation query, retrieve from and store into the local database::

    from dicomstation.server import ServerOptions, create_app, serve
    app = create_app(db, ServerOptions(port=8042))

Bound to 127.0.0.1 by default; binding elsewhere requires Basic or bearer auth.
"""

from __future__ import annotations

from dicomstation.server.app import create_app, dicomweb_router, install_security
from dicomstation.server.context import ServerContext
from dicomstation.server.options import ServerOptions, is_loopback
from dicomstation.server.running import RunningServer, start_in_thread

__all__ = [
    "RunningServer",
    "ServerContext",
    "ServerOptions",
    "create_app",
    "dicomweb_router",
    "install_security",
    "is_loopback",
    "start_in_thread",
]
