"""dicomstation: a Python DICOM workstation core.

query -> fetch -> database -> load -> process -> export -> send, from Python,
the ``dicomstation`` CLI, or the web UI. The names below are the public API,
together with the subpackages ``dicomstation.volumes`` (load), ``dicomstation.processing``
(segment, statistics), ``dicomstation.export`` (SEG, SR, SC, derived, bundle) and
``dicomstation.nodes`` (DICOMweb, DIMSE, local); everything else may change.

``load_series`` and ``LoadedVolume`` are imported on first use (they pull in highdicom).
"""

from typing import Any

from dicomstation.config import Credentials, DicomWebServer, DimseServer, LocalNodeConfig, Secret
from dicomstation.database import Database
from dicomstation.errors import (
    AssociationError,
    AuthenticationError,
    CancelledError,
    ConfigError,
    ConnectionFailedError,
    DatabaseError,
    DicomStationError,
    ExportError,
    GeometryWarning,
    InvalidDicomError,
    LoadError,
    NodeError,
    NotFoundError,
    ProcessingError,
    ProtocolError,
    RemoteStatusError,
)
from dicomstation.models import (
    InstanceRef,
    Level,
    PatientRef,
    Phase,
    ProgressEvent,
    Query,
    SeriesRef,
    StudyRef,
    TransferReport,
)
from dicomstation.nodes import CancelToken, DicomNode, open_node
from dicomstation.settings import Settings

__version__ = "0.1.0"

_LAZY = {"load_series": "dicomstation.volumes", "LoadedVolume": "dicomstation.volumes"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dicomstation' has no attribute {name!r}")


__all__ = [
    "AssociationError",
    "AuthenticationError",
    "CancelToken",
    "CancelledError",
    "ConfigError",
    "ConnectionFailedError",
    "Credentials",
    "Database",
    "DatabaseError",
    "DicomNode",
    "DicomStationError",
    "DicomWebServer",
    "DimseServer",
    "ExportError",
    "GeometryWarning",
    "InstanceRef",
    "InvalidDicomError",
    "Level",
    "LoadError",
    "LoadedVolume",
    "LocalNodeConfig",
    "NodeError",
    "NotFoundError",
    "PatientRef",
    "Phase",
    "ProcessingError",
    "ProgressEvent",
    "ProtocolError",
    "Query",
    "RemoteStatusError",
    "Secret",
    "SeriesRef",
    "Settings",
    "StudyRef",
    "TransferReport",
    "__version__",
    "load_series",
    "open_node",
]
