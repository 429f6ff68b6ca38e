"""The public API is small and deliberate; the error tree has one root."""

from __future__ import annotations

import inspect

import dicomstation
from dicomstation import errors

PUBLIC = {
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
    "load_series",
    "LoadedVolume",
}


def test_public_api_is_exactly_the_curated_list() -> None:
    assert set(dicomstation.__all__) == PUBLIC
    for name in dicomstation.__all__:
        assert hasattr(dicomstation, name), name


def test_every_error_has_the_one_root() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert len(classes) >= 15
    for cls in classes:
        assert issubclass(cls, errors.DicomStationError) or cls is errors.GeometryWarning


def test_node_error_names_server_operation_and_uid() -> None:
    error = errors.RemoteStatusError(
        "500 Internal Server Error", server="pacs", operation="WADO-RS", uid="1.2.3", status=500
    )
    assert str(error) == "WADO-RS on pacs for 1.2.3: 500 Internal Server Error"
    assert error.status == 500


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert dicomstation.__version__ == version("dicomstation")
