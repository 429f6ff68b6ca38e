"""Replacement values: dummies per VR (action D), date shifts (C on dates), text cleaning.

Dummy values are constants, so the output is the same on every run; they identify nobody and
are valid for their VR.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from pydicom.uid import UID

__all__ = [
    "DATE_VRS",
    "TEXT_VRS",
    "dummy_value",
    "identifying_pattern",
    "is_registered_uid",
    "scrub_text",
    "shift_date",
    "shift_datetime",
]

DUMMY_TEXT = "DEIDENTIFIED"
DUMMY_DATE = "19000101"
TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
DATE_VRS = frozenset({"DA", "DT"})
_BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_NUMBER_VRS = frozenset({"FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "AT"})
_DUMMIES: dict[str, object] = {
    "AE": DUMMY_TEXT,
    "AS": "000Y",
    "CS": DUMMY_TEXT,
    "DA": DUMMY_DATE,
    "DT": DUMMY_DATE + "000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "UR": "urn:none",
}


def dummy_value(vr: str) -> object:
    """A constant non-empty value valid for ``vr`` (not for ``UI`` or ``SQ``)."""
    if vr in TEXT_VRS:
        return DUMMY_TEXT
    if vr in _BINARY_VRS:
        return b"\x00\x00"
    if vr in _NUMBER_VRS:
        return 0
    return _DUMMIES.get(vr, DUMMY_TEXT)


def is_registered_uid(value: str) -> bool:
    """True for UIDs of the standard (PS3.6: classes, syntaxes, context groups, frames...).

    Everything under the DICOM root ``1.2.840.10008.`` is the standard's, never an instance's.
    """
    text = value.strip().rstrip("\x00")
    return text.startswith("1.2.840.10008.") or bool(UID(text).keyword)


def shift_date(value: str, days: int) -> str:
    """Shift a DA value by ``days``; an unparsable value becomes the dummy date."""
    text = value.strip()
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return DUMMY_DATE
    if len(text) != 8:
        return DUMMY_DATE
    try:
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return DUMMY_DATE


def shift_datetime(value: str, days: int) -> str:
    """Shift the date part of a DT value by ``days``, keeping time and offset."""
    text = value.strip()
    if len(text) < 8:
        return DUMMY_DATE + "000000"
    shifted = shift_date(text[:8], days)
    return shifted + text[8:] if shifted != DUMMY_DATE else DUMMY_DATE + "000000"


def identifying_pattern(identifying: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any identifying string (longest first)."""
    patterns = sorted({s for s in identifying if s}, key=len, reverse=True)
    if not patterns:
        return None
    return re.compile("|".join(re.escape(p) for p in patterns), re.IGNORECASE)


def scrub_text(text: str, pattern: re.Pattern[str] | None) -> str:
    """Replace every occurrence of an identifying string by ``*``.

    Parameters
    ----------
    text : str
        A value kept in the output.
    pattern : re.Pattern or None
        From :func:`identifying_pattern` over strings of the original instance that identify
        (names, IDs, dates, UIDs...).

    Returns
    -------
    str
        ``text`` with each occurrence masked; unchanged when nothing matched.
    """
    if pattern is None or not text:
        return text
    return pattern.sub("*", text)
