"""A bound on STOW-RS uploads in progress, in all and per client address.

An upload holds a worker thread while its body arrives, so without a bound a
few dozen slow clients would take every thread of the shared pool and freeze
the whole server. Uploads get their own limiter (never the shared pool), and
beyond ``max_uploads`` in all or ``max_uploads_per_client`` from one address a
request is refused at once with 429 and ``Retry-After``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
from fastapi import HTTPException

from dicomstation.server.options import ServerOptions

__all__ = ["UploadSlots"]


class UploadSlots:
    """Counts uploads in progress (one event loop: no lock needed)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.per_client: dict[str, int] = {}
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def in_progress(self) -> int:
        """Uploads in progress now."""
        return sum(self.per_client.values())

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The thread limiter for uploads (created in the server's event loop)."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.options.max_uploads)
        return self._limiter

    @contextlib.asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        """Hold one upload slot for ``client``.

        Raises
        ------
        fastapi.HTTPException
            429 when the server or this client already has the most uploads allowed.
        """
        mine = self.per_client.get(client, 0)
        if mine >= self.options.max_uploads_per_client:
            raise HTTPException(
                429,
                f"too many uploads in progress from this client "
                f"(limit {self.options.max_uploads_per_client})",
                headers={"Retry-After": "5"},
            )
        if self.in_progress >= self.options.max_uploads:
            raise HTTPException(
                429,
                f"too many uploads in progress (limit {self.options.max_uploads})",
                headers={"Retry-After": "5"},
            )
        self.per_client[client] = mine + 1
        try:
            yield
        finally:
            left = self.per_client[client] - 1
            if left:
                self.per_client[client] = left
            else:
                del self.per_client[client]
