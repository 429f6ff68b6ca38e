"""dicomstation: a Python DICOM workstation core.

query -> fetch -> database -> load -> process -> export -> send, from Python,
the ``dicomstation`` CLI, or the web UI. The names below are the public API,
together with the subpackages ``dicomstation.volumes`` (load), ``dicomstation.processing``
(segment, statistics), ``dicomstation.export`` (SEG, SR, SC, derived, bundle) and
``dicomstation.nodes`` (DICOMweb, DIMSE, local); everything else may change.

``load_series``, ``LoadedVolume``, ``Database``, the node and settings names are imported
on first use (they pull in highdicom, pydicom, httpx), so importing a subpackage stays light.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # the lazy names, for type checkers
    __version__: str
    from dicomstation.config import (
        Credentials,
        DicomWebServer,
        DimseServer,
        LocalNodeConfig,
        Secret,
    )
    from dicomstation.database import Database
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
    from dicomstation.volumes import LoadedVolume, load_series


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dicomstation")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


#: ``__version__`` (the installed distribution's version, from package metadata) is read on
#: first use: importlib.metadata costs ~0.03 s, paid by every command otherwise.

#: Imported on first use, so that ``import dicomstation.x`` (and the CLI) stays light.
_LAZY = {
    "load_series": "dicomstation.volumes",
    "LoadedVolume": "dicomstation.volumes",
    **dict.fromkeys(
        ("Credentials", "DicomWebServer", "DimseServer", "LocalNodeConfig", "Secret"),
        "dicomstation.config",
    ),
    "Database": "dicomstation.database",
    **dict.fromkeys(("CancelToken", "DicomNode", "open_node"), "dicomstation.nodes"),
    "Settings": "dicomstation.settings",
    **dict.fromkeys(
        (
            "InstanceRef",
            "Level",
            "PatientRef",
            "Phase",
            "ProgressEvent",
            "Query",
            "SeriesRef",
            "StudyRef",
            "TransferReport",
        ),
        "dicomstation.models",
    ),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        global __version__
        __version__ = _version()
        return __version__
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
