"""What every DICOMweb route needs: the database, the options, and URL building."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from dicomstation.database import Database
from dicomstation.server.options import ServerOptions
from dicomstation.server.uploads import UploadSlots

__all__ = ["ServerContext"]


@dataclass(frozen=True)
class ServerContext:
    """The database served, the server's options, and the uploads in progress."""

    db: Database
    options: ServerOptions
    uploads: UploadSlots = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uploads", UploadSlots(self.options))

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
