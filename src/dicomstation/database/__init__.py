"""The local DICOM database: files + SQLite index + cached headers."""

from dicomstation.database.database import Database

__all__ = ["Database"]
