"""Series selection on any DICOM attribute, as MONAI Deploy's series selector conditions.

A rule is a DICOM keyword and a value in the pipeline file's ``select`` table:

- a string: a regular expression searched (case-insensitive) in the attribute's
  values (``BodyPartExamined = "chest|thorax"``);
- a list of strings: values that must all be present (``ImageType = ["ORIGINAL"]``);
- a number, or a list of two numbers: the attribute's (first) value equals it, or lies
  in the inclusive range (``SliceThickness = [0.5, 2.5]``).

Rules are checked on one instance of a series (its header in DICOM JSON).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dicomstation.dicomjson import tag_hex, values
from dicomstation.errors import ConfigError

__all__ = ["AttributeRule", "is_keyword", "search_pattern"]


def search_pattern(text: str, what: str) -> re.Pattern[str] | None:
    """``text`` compiled case-insensitive (None when empty); ConfigError naming ``what``."""
    try:
        return re.compile(text, re.IGNORECASE) if text else None
    except re.error as exc:
        raise ConfigError(f"{what} {text!r}: {exc}") from None


def is_keyword(name: str) -> bool:
    """Whether ``name`` is a DICOM keyword (``BodyPartExamined``), not one of our rule names."""
    if not name[:1].isupper():
        return False
    try:
        tag_hex(name)
    except KeyError:
        return False
    return True


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str:
    if isinstance(value, dict):  # a person name
        return str(value.get("Alphabetic") or value.get("Ideographic") or "")
    return "" if value is None else str(value)


@dataclass(frozen=True)
class AttributeRule:
    """One condition on one attribute (see the module's description for the forms)."""

    keyword: str
    pattern: str = ""
    contains: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    _regex: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", search_pattern(self.pattern, f"select {self.keyword} ="))

    @classmethod
    def parse(cls, keyword: str, value: Any) -> AttributeRule:
        """The rule ``keyword = value`` of a pipeline file (ConfigError when malformed)."""
        number = _number(value)
        if isinstance(value, str):
            return cls(keyword, pattern=value)
        if number is not None:
            return cls(keyword, low=number, high=number)
        if isinstance(value, list | tuple) and value:
            numbers = [_number(v) for v in value]
            if len(value) == 2 and None not in numbers:
                low, high = sorted(n for n in numbers if n is not None)
                return cls(keyword, low=low, high=high)
            if all(isinstance(v, str) for v in value):
                return cls(keyword, contains=tuple(str(v).upper() for v in value))
        raise ConfigError(
            f"select {keyword} = {value!r}: give a regular expression, a list of values, "
            "a number or a range [low, high]"
        )

    def to_value(self) -> Any:
        """The rule's value as the pipeline file writes it."""
        if self.pattern:
            return self.pattern
        if self.contains:
            return list(self.contains)
        if self.low == self.high:
            return self.low
        return [self.low, self.high]

    def matches(self, header: Mapping[str, Any]) -> bool | None:
        """Whether ``header`` (DICOM JSON) matches; None when it lacks the attribute."""
        found = values(header, self.keyword)
        if not found:
            return None
        if self._regex is not None:
            return any(self._regex.search(_text(v)) for v in found)
        if self.contains:
            return set(self.contains) <= {_text(v).upper() for v in found}
        try:
            number = float(found[0])
        except (TypeError, ValueError):
            return False
        return self.low is not None and self.high is not None and self.low <= number <= self.high
