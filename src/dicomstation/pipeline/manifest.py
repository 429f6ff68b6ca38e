"""Cohort manifests as users keep them: rows of (StudyInstanceUID, SeriesInstanceUID).

Read by :class:`~dicomstation.pipeline.sources.ManifestSource`:

- **CSV** with a header row, in whatever form a portal or a spreadsheet wrote it: the
  delimiter is found from the header (``,`` ``;`` tab ``|``: European spreadsheets
  write ``;``), a UTF-8 byte order mark is ignored, and column names are compared
  without case, spaces or punctuation, so ``StudyInstanceUID``, ``study_uid``,
  ``Study UID`` (TCIA/NBIA ``metadata.csv``), ``Study Instance UID`` and
  ``(0020,000D)`` all name the study column (the same for series). Other columns are
  ignored. A row may name only a series (an IDC series list).
- **JSON lines** (``.jsonl``, ``.ndjson``, ``.json``): one object per line, keys as
  for CSV.
- **TCIA manifests** (``.tcia``, what the NBIA Data Retriever opens): the series UIDs
  listed after ``ListOfSeriesToDownload=``.

Every UID is checked; a bad one fails the run before anything starts, naming file
and line. Rows naming only a series get their study from a server
(:meth:`ManifestSource.items`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomstation.errors import ConfigError

__all__ = ["ManifestRow", "checked_uid", "read_manifest"]

_STUDY_KEYS = frozenset({"studyinstanceuid", "studyuid", "study", "0020000d"})
_SERIES_KEYS = frozenset({"seriesinstanceuid", "seriesuid", "series", "0020000e"})
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_TCIA_LIST = "listofseriestodownload="
_DELIMITERS = ",;\t|"


@dataclass(frozen=True)
class ManifestRow:
    """One row: its study ("" when it names only a series), series ("" for the whole
    study), and where it is (``file:line``, for messages)."""

    study: str
    series: str
    where: str


def read_manifest(path: Path) -> list[ManifestRow]:
    """The rows of the manifest at ``path``; ConfigError naming the file (and line) when bad."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read manifest {path}: {exc}") from None
    lines = text.splitlines()
    suffix = path.suffix.lower()
    if suffix == ".tcia" or any(line.strip().lower() == _TCIA_LIST for line in lines[:50]):
        return _tcia_rows(path, lines)
    if suffix in _JSON_SUFFIXES:
        return _json_rows(path, lines)
    return _csv_rows(path, lines)


def _key(name: object) -> str:
    """A column name compared without case, spaces or punctuation."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def checked_uid(value: str, where: str) -> str:
    """``value`` if it is a UID (digits and dots, 1..64 characters), else ConfigError."""
    if not value or len(value) > 64 or not all(c.isdigit() or c == "." for c in value):
        raise ConfigError(f"{where}: {value!r} is not a DICOM UID")
    return value


def _row(values: Mapping[str, Any], where: str) -> ManifestRow:
    """The row of ``values`` (a CSV row or a JSON object), its UIDs checked."""
    study = series = ""
    for name, value in values.items():
        key, text = _key(name), str(value or "").strip()
        if key in _STUDY_KEYS and text and not study:
            study = checked_uid(text, where)
        elif key in _SERIES_KEYS and text and not series:
            series = checked_uid(text, where)
    if not (study or series):
        raise ConfigError(f"{where}: no StudyInstanceUID or SeriesInstanceUID")
    return ManifestRow(study, series, where)


def _delimiter(header: str) -> str:
    try:
        return csv.Sniffer().sniff(header, delimiters=_DELIMITERS).delimiter
    except csv.Error:  # one column: nothing to tell
        return ","


def _csv_rows(path: Path, lines: list[str]) -> list[ManifestRow]:
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ConfigError(f"{path}: the manifest is empty")
    reader = csv.DictReader(lines[first:], delimiter=_delimiter(lines[first]))
    names = {_key(name) for name in reader.fieldnames or ()}
    if not names & (_STUDY_KEYS | _SERIES_KEYS):
        found = ", ".join(repr(n) for n in (reader.fieldnames or ())[:8])
        raise ConfigError(
            f"{path}: the CSV header must name a StudyInstanceUID or SeriesInstanceUID "
            f"column (found {found or 'none'})"
        )
    rows: list[ManifestRow] = []
    for row in reader:  # rows with no value at all are skipped by the reader
        where = f"{path}:{first + reader.line_num}"
        rows.append(_row({k: v for k, v in row.items() if k is not None}, where))
    return rows


def _json_rows(path: Path, lines: list[str]) -> list[ManifestRow]:
    rows: list[ManifestRow] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number}: each line must be a JSON object")
        rows.append(_row(row, f"{path}:{number}"))
    return rows


def _tcia_rows(path: Path, lines: list[str]) -> list[ManifestRow]:
    """The series listed after ``ListOfSeriesToDownload=`` (the lines before are settings)."""
    start = next((n for n, line in enumerate(lines) if line.strip().lower() == _TCIA_LIST), None)
    if start is None:
        raise ConfigError(f"{path}: a TCIA manifest needs a ListOfSeriesToDownload= line")
    return [
        ManifestRow("", checked_uid(line.strip(), f"{path}:{number}"), f"{path}:{number}")
        for number, line in enumerate(lines[start + 1 :], start=start + 2)
        if line.strip()
    ]
