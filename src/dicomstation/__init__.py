"""dicomstation: a Python DICOM workstation core.

query -> fetch -> database -> load -> process -> export -> send, from Python,
the ``dicomstation`` CLI, or the web UI. The names below are the public API;
everything else may change.
"""

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
    "open_node",
]
