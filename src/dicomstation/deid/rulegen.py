"""Generate ``pixel_rules_deid.json``, the opt-in burned-in text rules, from deid's rule list.

Run (developers only; the package never imports this module)::

    .venv/bin/pip install deid==0.4.13          # in the bench extra
    .venv/bin/python -m dicomstation.deid.rulegen

Source: the ``%filter graylist`` of ``deid/data/deid.dicom`` in deid 0.4.13 (pydicom/deid,
MIT), which carries CTP's DicomPixelAnonymizer regions and its contributors' own, per
manufacturer/model. Rules are converted when every condition is one dicomstation can express:
``contains FIELD PATTERN`` (a case-insensitive regular expression search, as in deid), joined by
``+`` (and), ``equals Rows|Columns N`` (image size) or ``equals FIELD VALUE``, with at least one
``ctpcoordinates x,y,w,h`` or ``coordinates x0,y0,x1,y1``. Rules using ``||``, ``missing``,
``empty``, ``notcontains``, ``present`` or coordinates taken from header fields are left out and
counted. The output names the source and its version.
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SOURCE_PACKAGE = "deid"
SOURCE_VERSION = "0.4.13"
SOURCE_FILE = "deid/data/deid.dicom"
OUTPUT = Path(__file__).with_name("pixel_rules_deid.json")
_CONDITION = re.compile(r"^\+?\s*(contains|equals)\s+(\w+)\s+(.+)$")


def _graylist(text: str) -> list[tuple[str, list[str]]]:
    section = text.split("%filter graylist", 1)[1].split("%", 1)[0]
    rules: list[tuple[str, list[str]]] = []
    for line in section.splitlines():
        stripped = line.strip()
        if stripped.startswith("LABEL"):
            rules.append((stripped[5:].split("#", 1)[0].strip(), []))
        elif stripped and not stripped.startswith("#") and rules:
            rules[-1][1].append(stripped)
    return rules


def _region(kind: str, values: str) -> list[int] | None:
    try:
        numbers = [int(v) for v in values.replace(" ", "").split(",")]
    except ValueError:
        return None
    if len(numbers) != 4:
        return None
    if kind == "coordinates":  # x0, y0, x1, y1
        numbers = [numbers[0], numbers[1], numbers[2] - numbers[0], numbers[3] - numbers[1]]
    return numbers if numbers[2] > 0 and numbers[3] > 0 and min(numbers) >= 0 else None


def convert(name: str, lines: list[str]) -> dict[str, Any] | None:
    """One deid graylist rule as a dicomstation pixel rule, or None when it cannot be expressed."""
    rule: dict[str, Any] = {"name": name, "match": {}, "regions": []}
    for line in lines:
        if "||" in line:
            return None
        kind, _, rest = line.partition(" ")
        if kind in ("ctpcoordinates", "coordinates"):
            region = _region(kind, rest)
            if region is None:
                return None
            rule["regions"].append(region)
            continue
        found = _CONDITION.match(line)
        if found is None:
            return None
        verb, field, value = found.groups()
        if verb == "equals" and field in ("Rows", "Columns") and value.strip().isdigit():
            rule[field.lower()] = int(value)
        elif verb == "equals":
            rule["match"][field] = f"^{re.escape(value.strip())}$"
        elif field in rule["match"]:
            rule["match"][field] = f"(?=.*(?:{rule['match'][field]}))(?=.*(?:{value.strip()}))"
        else:
            rule["match"][field] = value.strip()
    return rule if rule["match"] and rule["regions"] else None


def build() -> dict[str, Any]:
    """The rule set (see the module docstring)."""
    found = metadata.version(SOURCE_PACKAGE)
    if found != SOURCE_VERSION:
        raise SystemExit(f"{SOURCE_PACKAGE} {SOURCE_VERSION} is required (found {found})")
    path = Path(str(metadata.distribution(SOURCE_PACKAGE).locate_file(SOURCE_FILE)))
    source = _graylist(path.read_text(encoding="utf-8"))
    rules = [r for r in (convert(n, lines) for n, lines in source) if r is not None]
    return {
        "source": f"{SOURCE_PACKAGE}=={SOURCE_VERSION} {SOURCE_FILE} %filter graylist (MIT)",
        "generator": "python -m dicomstation.deid.rulegen",
        "converted": len(rules),
        "left_out": len(source) - len(rules),
        "rule": rules,
    }


def main() -> None:
    """Write the rule set next to this module."""
    data = build()
    OUTPUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}: {data['converted']} rules ({data['left_out']} left out)\n")


if __name__ == "__main__":
    main()
