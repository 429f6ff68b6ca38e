"""The PS3.15 Annex E tables (edition 2026d) and how an action is chosen for an attribute.

The table is *data*, never typed by hand: ``annex_e_2026d.json`` is written by
:mod:`dicomstation.deid.tablegen` from the standard's DocBook source as carried by a pinned
package, and checked against a second package (see that module for why those sources).

Choosing the action (:func:`resolve`):

1. the Basic Profile code of Table E.1-1 (or of Table E.3.4-1 for a content item);
2. an enabled option's column overrides it: ``K`` (retain) wins over ``C`` (clean);
3. compound codes are narrowed by the attribute's type in the instance's IOD
   (:mod:`dicomstation.deid.iod`); where the type is unknown the attribute is kept so the output
   stays conformant whatever the IOD: ``X/Z`` -> ``Z``; ``X/D``, ``Z/D``, ``X/Z/D`` -> ``D``;
   ``X/Z/U*`` is always ``U`` (the sequence is kept and every UID inside it is replaced, which
   keeps references resolvable).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "EDITION",
    "Action",
    "ContentRule",
    "Option",
    "ProfileTable",
    "Rule",
    "profile_table",
    "resolve",
]

#: Edition of PS3.15 the shipped table comes from.
EDITION = "2026d"
_TABLE_FILE = f"annex_e_{EDITION}.json"


class Action(enum.StrEnum):
    """Action codes of PS3.15 Table E.1-1 once compound codes are narrowed."""

    DUMMY = "D"
    ZERO = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"


class Option(enum.StrEnum):
    """The Annex E options (column keys of the table), with their CID 7050 codes."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"

    @property
    def code(self) -> tuple[str, str]:
        """``(CodeValue, CodeMeaning)`` of PS3.16 CID 7050 (scheme ``DCM``)."""
        return _CID7050[self]


#: PS3.16 CID 7050 "De-identification Method" (coding scheme DCM).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA_CODE = ("113101", "Clean Pixel Data Option")
_CID7050: dict[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}

_NARROW = {
    "D": Action.DUMMY,
    "Z": Action.ZERO,
    "X": Action.REMOVE,
    "K": Action.KEEP,
    "C": Action.CLEAN,
    "U": Action.UID,
    "X/Z": Action.ZERO,
    "X/D": Action.DUMMY,
    "Z/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY,
    "X/Z/U*": Action.UID,
}


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1.

    Parameters
    ----------
    tag : str
        Eight hex digits, ``xx`` for repeating groups (``60XX3000``), or ``PRIVATE``.
    name : str
        Attribute name as the standard spells it.
    basic : str
        The Basic Profile code, verbatim (``X/Z/D``...).
    options : dict
        Option column -> code, for the options that name this attribute.
    """

    tag: str
    name: str
    basic: str
    options: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ContentRule:
    """One row of Table E.3.4-1 (an SR content item, by concept name and value type)."""

    code: str
    scheme: str
    meaning: str
    value_type: str
    basic: str
    options: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ProfileTable:
    """Tables E.1-1 and E.3.4-1 indexed for lookup."""

    edition: str
    source: str
    by_tag: dict[int, Rule]
    repeating: tuple[tuple[int, int, Rule], ...]
    private: Rule
    content: dict[tuple[str, str, str], ContentRule]

    def rule_for(self, tag: int) -> Rule | None:
        """The rule for ``tag`` (private tags give the ``PRIVATE`` row), or None."""
        if (tag >> 16) % 2:
            return self.private
        found = self.by_tag.get(tag)
        if found is not None:
            return found
        for mask, value, rule in self.repeating:
            if tag & mask == value:
                return rule
        return None

    def content_rule(self, code: str, scheme: str, value_type: str) -> ContentRule | None:
        """The E.3.4-1 row for a content item's concept name and value type, or None."""
        return self.content.get((code, scheme, value_type))


def _repeating(rule: Rule) -> tuple[int, int, Rule]:
    text = rule.tag
    mask = int("".join("0" if c == "X" else "F" for c in text), 16)
    value = int(text.replace("X", "0"), 16)
    return mask, value, rule


@cache
def profile_table() -> ProfileTable:
    """The shipped table (read once per process)."""
    raw: dict[str, Any] = json.loads(
        resources.files("dicomstation.deid").joinpath(_TABLE_FILE).read_text(encoding="utf-8")
    )
    if raw["edition"] != EDITION:
        raise RuntimeError(f"{_TABLE_FILE}: edition {raw['edition']}, expected {EDITION}")
    rules = [Rule(r["tag"], r["name"], r["basic"], dict(r["options"])) for r in raw["rules"]]
    private = next(r for r in rules if r.tag == "PRIVATE")
    exact = {int(r.tag, 16): r for r in rules if r.tag != "PRIVATE" and "X" not in r.tag}
    repeating = tuple(_repeating(r) for r in rules if r.tag != "PRIVATE" and "X" in r.tag)
    content = {
        (c["code"], c["scheme"], c["value_type"]): ContentRule(
            c["code"], c["scheme"], c["meaning"], c["value_type"], c["basic"], dict(c["options"])
        )
        for c in raw["content_items"]
    }
    return ProfileTable(raw["edition"], raw["generated_from"], exact, repeating, private, content)


def resolve(
    basic: str,
    options: dict[str, str],
    enabled: frozenset[Option],
    narrow: Callable[[str], Action] | None = None,
) -> Action:
    """The action for a row under the enabled options (see the module docstring).

    Parameters
    ----------
    basic : str
        The row's Basic Profile code, verbatim.
    options : dict
        The row's option columns.
    enabled : frozenset of Option
        Options the user asked for.
    narrow : callable, optional
        Narrows a compound code for the attribute's IOD (:func:`dicomstation.deid.iod.narrow`);
        without it compound codes keep the attribute (Z or D, U for ``X/Z/U*``).

    Returns
    -------
    Action
    """
    codes = {options[o.value] for o in enabled if o.value in options}
    if "K" in codes:
        return Action.KEEP
    if "C" in codes:
        return Action.CLEAN
    if narrow is not None:
        return narrow(basic)
    return _NARROW[basic]
