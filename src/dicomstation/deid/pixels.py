"""Burned-in text: refuse what may carry it, or blank regions by manufacturer/model rules.

An instance is *suspect* when BurnedInAnnotation is YES, or when its class is known to carry
text in the pixels (ultrasound, secondary capture), or for X-ray angiography/fluoroscopy when it
does not say BurnedInAnnotation=NO. A suspect instance is refused unless a :class:`PixelRule`
matches it (its regions are blanked in every frame and the Clean Pixel Data Option is
recorded), or the caller explicitly accepts the risk (``allow_burned_in``).

Rules are opt-in, like CTP's DicomPixelAnonymizer script and deid's ``%filter graylist``: a rule
names header values (case-insensitive substrings, e.g. Manufacturer and ManufacturerModelName),
optional image size, and rectangles ``[x, y, width, height]`` in pixel columns/rows. Header
values are matched as in deid: a case-insensitive regular-expression search. A rule file is
TOML::

    [[rule]]
    name = "Philips EPIQ: patient banner"
    match = { Manufacturer = "Philips", ManufacturerModelName = "EPIQ" }
    rows = 600
    columns = 800
    regions = [[0, 0, 800, 80]]

:func:`builtin_pixel_rules` is an opt-in set converted from deid 0.4.13's graylist (CTP's
DicomPixelAnonymizer regions and deid contributors'), by :mod:`dicomstation.deid.rulegen`;
``--pixel-rules deid`` selects it.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dicomstation.errors import ConfigError

__all__ = [
    "BUILTIN",
    "PixelRule",
    "blank_regions",
    "builtin_pixel_rules",
    "burned_in_reason",
    "load_pixel_rules",
    "matching_rule",
]

#: Name that selects :func:`builtin_pixel_rules` where a rule file is expected.
BUILTIN = "deid"

_US_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6.2",
        "1.2.840.10008.5.1.4.1.1.6.3",
        "1.2.840.10008.5.1.4.1.1.3.1",
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.3",
    }
)
_SC = "1.2.840.10008.5.1.4.1.1.7"
_SC_CLASSES = frozenset({_SC, *(f"{_SC}.{i}" for i in range(1, 5))})
_XA_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.12.1",
        "1.2.840.10008.5.1.4.1.1.12.1.1",
        "1.2.840.10008.5.1.4.1.1.12.2",
        "1.2.840.10008.5.1.4.1.1.12.2.1",
    }
)


@dataclass(frozen=True)
class PixelRule:
    """Regions to blank in instances whose header matches.

    Parameters
    ----------
    name : str
        Shown in reports and recorded nowhere in the output.
    match : mapping of str to str
        Keyword -> case-insensitive regular expression searched in the value (all must match).
    regions : tuple of (x, y, width, height)
        Rectangles in pixel columns (x) and rows (y).
    rows, columns : int
        Image size the rule applies to (0: any).
    """

    name: str
    match: Mapping[str, str] = field(hash=False)
    regions: tuple[tuple[int, int, int, int], ...]
    rows: int = 0
    columns: int = 0

    def matches(self, ds: Dataset) -> bool:
        """True when every header value and the image size agree with the rule."""
        if self.rows and int(ds.get("Rows", 0)) != self.rows:
            return False
        if self.columns and int(ds.get("Columns", 0)) != self.columns:
            return False
        for keyword, wanted in self.match.items():
            value = ds.get(keyword)
            if value is None or re.search(wanted, str(value), re.IGNORECASE) is None:
                return False
        return True


def _rule(table: Mapping[str, object], where: str) -> PixelRule:
    try:
        match = table["match"]
        regions = table["regions"]
        if not isinstance(match, dict) or not match or not isinstance(regions, list):
            raise TypeError("match must be a non-empty table and regions a list")
        for pattern in match.values():
            re.compile(str(pattern))
        boxes = tuple(tuple(int(v) for v in box) for box in regions)
        if not boxes or any(len(b) != 4 or min(b) < 0 or b[2] == 0 or b[3] == 0 for b in boxes):
            raise ValueError("each region is [x, y, width, height] with width, height > 0")
        return PixelRule(
            name=str(table.get("name", "unnamed")),
            match={str(k): str(v) for k, v in match.items()},
            regions=tuple((b[0], b[1], b[2], b[3]) for b in boxes),
            rows=int(str(table.get("rows", 0))),
            columns=int(str(table.get("columns", 0))),
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise ConfigError(f"{where}: bad pixel rule ({exc})") from None


@cache
def builtin_pixel_rules() -> tuple[PixelRule, ...]:
    """The opt-in rule set shipped with dicomstation (from deid 0.4.13's graylist)."""
    text = resources.files("dicomstation.deid").joinpath("pixel_rules_deid.json").read_text()
    rules = json.loads(text)["rule"]
    return tuple(_rule(r, f"pixel_rules_deid.json rule {i}") for i, r in enumerate(rules))


def load_pixel_rules(path: Path) -> tuple[PixelRule, ...]:
    """Read a TOML rule file (see the module docstring); ``deid`` gives the built-in set.

    Raises
    ------
    ConfigError
        If the file cannot be read or a rule is malformed (names the file and rule).
    """
    if str(path) == BUILTIN and not path.exists():
        return builtin_pixel_rules()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read pixel rules {path}: {exc}") from None
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not rules:
        raise ConfigError(f"{path}: no [[rule]] tables")
    return tuple(_rule(r, f"{path} rule {i}") for i, r in enumerate(rules))


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in text, or None when nothing suggests it."""
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        return None
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES"
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in _US_CLASSES or str(ds.get("Modality", "")) == "US":
        return "ultrasound images usually carry burned-in text"
    if sop_class in _SC_CLASSES:
        return "secondary captures often carry burned-in text"
    if sop_class in _XA_CLASSES and flag != "NO":
        return "X-ray angiography/fluoroscopy without BurnedInAnnotation=NO"
    return None


def matching_rule(ds: Dataset, rules: tuple[PixelRule, ...]) -> PixelRule | None:
    """The first rule that matches ``ds``, or None."""
    return next((rule for rule in rules if rule.matches(ds)), None)


def blank_regions(ds: Dataset, rule: PixelRule) -> None:
    """Set the rule's regions to zero in every frame; the pixels are stored uncompressed.

    Colour images decoded from YBR are stored as RGB. Raises the decoder's error when the
    pixel data cannot be decoded.
    """
    array = np.array(ds.pixel_array)  # a writable copy
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    view = array if frames > 1 else array[np.newaxis]
    for x, y, width, height in rule.regions:
        view[:, y : y + height, x : x + width, ...] = 0
    photometric = str(ds.PhotometricInterpretation)
    if photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom's decoder converted the samples
    ds.set_pixel_data(array, photometric, int(ds.BitsStored), generate_instance_uid=False)
