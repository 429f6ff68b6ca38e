"""What every DICOMweb route needs: the database, the options, and URL building."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from dicomstation.database import Database
from dicomstation.server.options import ServerOptions

__all__ = ["ServerContext"]


@dataclass(frozen=True)
class ServerContext:
    """The database served and the server's options."""

    db: Database
    options: ServerOptions

    def base_url(self, request: Request) -> str:
        """Absolute URL of the DICOMweb root as the client reached it.

        Some clients (dicomweb-client) send a Host header without the port; the
        port the connection actually reached is used then.
        """
        base = request.base_url
        server = request.scope.get("server")
        if base.port is None and server and server[1] not in (80, 443):
            base = base.replace(port=int(server[1]))
        return str(base).rstrip("/") + self.options.prefix

    def study_url(self, request: Request, study_uid: str) -> str:
        """Absolute WADO-RS URL of a study."""
        return f"{self.base_url(request)}/studies/{study_uid}"

    def instance_url(self, request: Request, study: str, series: str, sop: str) -> str:
        """Absolute WADO-RS URL of an instance."""
        return f"{self.study_url(request, study)}/series/{series}/instances/{sop}"
