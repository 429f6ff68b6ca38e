"""The one exception tree of dicomstation.

Every error raised on purpose by the package derives from :class:`DicomStationError`.
Errors from backends (httpx, pynetdicom, sqlite3, pydicom) are translated in one
place per backend (``nodes/http_errors.py``, ``nodes/dimse_errors.py``,
``database/database.py``) so callers only ever catch what is drawn here::

    DicomStationError
    ├── ConfigError                 settings file, unknown server, bad option
    │   └── UsageError              a command-line value that cannot be used (exit code 2)
    ├── InvalidDicomError           a file that is not (complete) DICOM; names the file
    ├── NotFoundError               a UID that is not in the database or on the server
    │   └── NothingSelectedError    a work item has no series a step's selection takes
    ├── DatabaseError               the local database cannot do what was asked
    │   ├── DiskFullError           no space left (ENOSPC, SQLITE_FULL); nothing half-written
    │   └── JobRunningError         another process is running this pipeline job
    ├── NodeError                   a remote server failed; names server, operation, UID
    │   ├── ConnectionFailedError   refused, reset, dropped mid-transfer, timed out
    │   ├── AuthenticationError     401/403, association rejected for the calling AE
    │   ├── RemoteStatusError       HTTP 4xx/5xx or DIMSE Failure status
    │   ├── ProtocolError           malformed multipart, wrong content type, truncated part
    │   └── AssociationError        DIMSE association rejected or aborted
    ├── TransferError               some instances of a fetch/send failed; names them
    ├── CancelledError              the user cancelled a transfer
    ├── LoadError                   a series cannot become a volume; names the files
    ├── ProcessingError             a processing step got input it cannot handle
    ├── ExportError                 a result cannot become a valid DICOM record
    └── DeidentificationError       an instance cannot be de-identified safely; names the file

Warnings that do not stop the work (uneven slice spacing, gantry tilt...) are
:class:`GeometryWarning` instances, issued with :func:`warnings.warn` and also
returned on the loaded object so nothing is silent.
"""

from __future__ import annotations

__all__ = [
    "AssociationError",
    "AuthenticationError",
    "CancelledError",
    "ConfigError",
    "ConnectionFailedError",
    "DatabaseError",
    "DeidentificationError",
    "DicomStationError",
    "DiskFullError",
    "ExportError",
    "GeometryWarning",
    "InvalidDicomError",
    "JobRunningError",
    "LoadError",
    "NodeError",
    "NotFoundError",
    "NothingSelectedError",
    "ProcessingError",
    "ProtocolError",
    "RemoteStatusError",
    "TransferError",
    "UsageError",
]


class DicomStationError(Exception):
    """Root of every error dicomstation raises on purpose."""


class ConfigError(DicomStationError):
    """Settings are missing, malformed, or name an unknown server."""


class UsageError(ConfigError):
    """A value given on the command line (or to the API) that cannot be used.

    The CLI exits with code 2 for it, as for its own option errors.
    """


class InvalidDicomError(DicomStationError):
    """A file is not DICOM, or is truncated.

    Parameters
    ----------
    path : str
        The offending file.
    reason : str
        What is wrong with it.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotFoundError(DicomStationError):
    """A UID (or other key) that does not exist where it was looked for."""


class NothingSelectedError(NotFoundError):
    """A work item has nothing a step's series selection takes: a pipeline skips it."""


class DatabaseError(DicomStationError):
    """The local database cannot complete an operation."""


class DiskFullError(DatabaseError):
    """The disk (or quota) holding the database is full; the operation was undone."""


class JobRunningError(DatabaseError):
    """A pipeline job is being run by another driver (process) on the same ledger."""


class NodeError(DicomStationError):
    """A remote DICOM node failed.

    Parameters
    ----------
    message : str
        What happened.
    server : str
        Name (or URL / AE title) of the server.
    operation : str
        The operation, with the standard's name (``QIDO-RS``, ``C-FIND``...).
    uid : str or None
        The UID concerned, when there is one.
    status : int or None
        HTTP or DIMSE status, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        server: str,
        operation: str,
        uid: str | None = None,
        status: int | None = None,
    ) -> None:
        where = f"{operation} on {server}" + (f" for {uid}" if uid else "")
        super().__init__(f"{where}: {message}")
        self.server = server
        self.operation = operation
        self.uid = uid
        self.status = status


class ConnectionFailedError(NodeError):
    """The connection was refused, reset, dropped or timed out (retryable)."""


class AuthenticationError(NodeError):
    """The server refused our credentials or calling AE title."""


class RemoteStatusError(NodeError):
    """The server answered with an error status (HTTP 4xx/5xx, DIMSE Failure)."""


class ProtocolError(NodeError):
    """The server's answer does not follow the protocol (multipart, content type...)."""


class AssociationError(NodeError):
    """A DIMSE association was rejected or aborted."""


class TransferError(DicomStationError):
    """Some instances of a fetch or send failed (the message names them and why)."""


class CancelledError(DicomStationError):
    """The user cancelled the operation; nothing half-done was kept."""


class LoadError(DicomStationError):
    """A series cannot be loaded as a volume."""


class ProcessingError(DicomStationError):
    """A processing step got input it cannot handle."""


class ExportError(DicomStationError):
    """A result cannot be exported as a valid DICOM record."""


class DeidentificationError(DicomStationError):
    """An instance cannot be de-identified safely (burned-in text, undecodable pixels...).

    Parameters
    ----------
    path : str
        The offending file (or instance).
    reason : str
        What is wrong, and what would let it through.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GeometryWarning(UserWarning):
    """A geometry problem that does not stop loading (uneven spacing, tilt...)."""
