"""DICOM nodes: one :class:`DicomNode` interface over DICOMweb, DIMSE and the local database."""

from __future__ import annotations

from dicomstation.config import DicomWebServer, DimseServer, LocalNodeConfig, ServerConfig
from dicomstation.nodes.base import CancelToken, DicomNode, ProgressCallback, Ref

__all__ = ["CancelToken", "DicomNode", "ProgressCallback", "Ref", "open_node"]


def open_node(server: ServerConfig, *, local: LocalNodeConfig | None = None) -> DicomNode:
    """Return the node for a configured server, choosing the protocol from its settings.

    Parameters
    ----------
    server : DicomWebServer or DimseServer
        The server's configuration (see :mod:`dicomstation.settings`).
    local : LocalNodeConfig, optional
        Our own AE identity, used by DIMSE retrieves (C-MOVE destination).
    """
    if isinstance(server, DicomWebServer):
        from dicomstation.nodes.dicomweb import DicomWebNode

        return DicomWebNode.from_config(server)
    if isinstance(server, DimseServer):
        from dicomstation.nodes.dimse import DimseNode

        return DimseNode.from_config(server, local=local or LocalNodeConfig())
    raise TypeError(f"not a server configuration: {server!r}")
