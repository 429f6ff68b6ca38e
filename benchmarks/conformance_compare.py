"""How two DICOMweb answers to the same request differ (for ``conformance_vs_orthanc.py``).

Answers are normalised before they are compared: JSON objects are matched by their
UIDs and compared by attribute set and value (numbers as numbers, URLs relative to
the server's root, BulkDataURI values by presence only); multipart answers by part
count, part media types and part bytes (DICOM parts by their data set, not their
encoding); images by format and size.
"""

from __future__ import annotations

import fnmatch
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dicomstation.nodes.multipart import boundary_of, iter_parts, parse_content_type

UID_TAGS = ("00080018", "0020000E", "0020000D")
NUMBER_VRS = {"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"}


@dataclass(frozen=True)
class Answer:
    """One server's answer: status, Content-Type and body (``root`` is the server's URL)."""

    status: int
    content_type: str
    body: bytes
    root: str


@dataclass(frozen=True)
class Difference:
    """One way the two answers to ``request`` differ."""

    request: str
    aspect: str
    detail: str
    ours: str
    theirs: str


@dataclass(frozen=True)
class Explained:
    """A known difference (``request``/``detail`` are fnmatch patterns) and why it is fine."""

    request: str
    aspect: str
    detail: str
    reason: str
    values: str = "*"  # pattern of "<ours> -> <Orthanc's>"

    def covers(self, diff: Difference) -> bool:
        return (
            fnmatch.fnmatchcase(diff.request, self.request)
            and diff.aspect == self.aspect
            and fnmatch.fnmatchcase(diff.detail, self.detail)
            and fnmatch.fnmatchcase(f"{diff.ours} -> {diff.theirs}", self.values)
        )


def media_type(content_type: str) -> str:
    """``type/subtype`` plus the ``type`` parameter of multipart answers."""
    media, params = parse_content_type(content_type or "")
    if media.startswith("multipart/") and "type" in params:
        return f'{media}; type="{parse_content_type(params["type"])[0]}"'
    return media


def _value(element: dict[str, Any], root: str) -> Any:
    vr = element.get("vr", "")
    if "BulkDataURI" in element:
        return "<bulk data>"
    if "InlineBinary" in element:
        return "<bulk data>"
    values = element.get("Value")
    if values is None:
        return None
    if vr == "SQ":
        return [normalise(item, root) for item in values]
    if vr in NUMBER_VRS:
        return [float(v) if v is not None else None for v in values]
    if vr == "PN":
        return [{k: v for k, v in (p or {}).items() if v} for p in values]
    return [v.replace(root, "{root}") if isinstance(v, str) else v for v in values]


def normalise(obj: dict[str, Any], root: str) -> dict[str, Any]:
    """A DICOM JSON object as comparable values (empty values dropped, URLs relative)."""
    out = {}
    for tag, element in obj.items():
        value = _value(element, root)
        if value not in (None, [], [None]):
            out[tag.upper()] = value
    return out


def _key(obj: dict[str, Any], name: str) -> str:
    """The UID an object is matched by: of the level the request searched."""
    tags = UID_TAGS
    if name.startswith(("QIDO studies", "QIDO PN")):
        tags = ("0020000D",)
    elif name.startswith("QIDO series"):
        tags = ("0020000E",)
    for tag in tags:
        if tag in obj:
            return str(obj[tag]["Value"][0]) if obj[tag].get("Value") else ""
    return ""


def _keyword(tag: str) -> str:
    from pydicom.datadict import keyword_for_tag

    try:
        if tag[4:] == "0000":
            return f"{tag} group length"
        return f"{tag} {keyword_for_tag(int(tag, 16)) or 'private'}"
    except ValueError:
        return tag


def compare_json(name: str, ours: Any, theirs: Any, roots: tuple[str, str]) -> list[Difference]:
    """Differences between two DICOM JSON answers (a list of objects or one object)."""
    ours = ours if isinstance(ours, list) else [ours]
    theirs = theirs if isinstance(theirs, list) else [theirs]
    mine = {_key(o, name): normalise(o, roots[0]) for o in ours}
    other = {_key(o, name): normalise(o, roots[1]) for o in theirs}
    diffs = []
    if sorted(mine) != sorted(other):
        diffs.append(Difference(name, "objects", "", str(len(mine)), str(len(other))))
    for key in sorted(set(mine) & set(other)):
        a, b = mine[key], other[key]
        for tag in sorted(set(a) - set(b)):
            diffs.append(Difference(name, "only ours", _keyword(tag), "present", "absent"))
        for tag in sorted(set(b) - set(a)):
            diffs.append(Difference(name, "only Orthanc", _keyword(tag), "absent", "present"))
        for tag in sorted(set(a) & set(b)):
            if a[tag] != b[tag]:
                diffs.append(
                    Difference(name, "value", _keyword(tag), str(a[tag])[:80], str(b[tag])[:80])
                )
    return _dedupe(diffs)


def _dedupe(diffs: list[Difference]) -> list[Difference]:
    """One difference per (aspect, attribute), whatever the number of objects showing it."""
    seen: dict[tuple[str, str], Difference] = {}
    for diff in diffs:
        seen.setdefault((diff.aspect, diff.detail), diff)
    return list(seen.values())


def _parts(answer: Answer) -> list[tuple[str, bytes]]:
    boundary = boundary_of(answer.content_type)
    return [(p.content_type, p.read()) for p in iter_parts([answer.body], boundary)]


def _dicom_identity(data: bytes) -> str:
    """A DICOM part as what it holds: SOP UID and decoded pixels, whatever the encoding."""
    import hashlib

    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    pixels = ""
    if "PixelData" in ds:
        try:
            pixels = hashlib.sha256(
                ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()
            ).hexdigest()[:12]
        except Exception as exc:  # a part pydicom cannot decode is a finding
            pixels = f"undecodable: {type(exc).__name__}"
    return f"{ds.SOPInstanceUID} pixels {pixels}"


def compare_multipart(name: str, ours: Answer, theirs: Answer) -> list[Difference]:
    """Part count, part media types and part contents."""
    mine, other = _parts(ours), _parts(theirs)
    if len(mine) != len(other):
        return [Difference(name, "parts", "count", str(len(mine)), str(len(other)))]
    diffs = []
    for index, ((type_a, a), (type_b, b)) in enumerate(zip(mine, other, strict=True)):
        if type_a != type_b:
            diffs.append(Difference(name, "part type", str(index), type_a, type_b))
        if type_a == type_b == "application/dicom":
            a_id, b_id = _dicom_identity(a), _dicom_identity(b)
            if a_id != b_id:
                diffs.append(Difference(name, "part content", str(index), a_id, b_id))
        elif a != b:
            detail = f"{len(a)} vs {len(b)} bytes"
            diffs.append(Difference(name, "part bytes", str(index), detail, ""))
    return _dedupe(diffs)


def compare_image(name: str, ours: Answer, theirs: Answer) -> list[Difference]:
    """Format and size of two rendered images."""
    from PIL import Image

    shapes = []
    for answer in (ours, theirs):
        try:
            image = Image.open(io.BytesIO(answer.body))
            shapes.append(f"{image.format} {image.size[0]}x{image.size[1]}")
        except Exception:  # not an image
            shapes.append(f"not an image ({len(answer.body)} bytes)")
    if shapes[0] != shapes[1]:
        return [Difference(name, "image", "", shapes[0], shapes[1])]
    return []


def compare(name: str, ours: Answer, theirs: Answer) -> list[Difference]:
    """Every difference between two answers to the same request."""
    diffs = []
    if ours.status != theirs.status:
        diffs.append(Difference(name, "status", "", str(ours.status), str(theirs.status)))
    type_a, type_b = media_type(ours.content_type), media_type(theirs.content_type)
    if type_a != type_b and ours.status < 300 and theirs.status < 300:
        diffs.append(Difference(name, "content type", "", type_a, type_b))
    if not (200 <= ours.status < 300 and 200 <= theirs.status < 300) or type_a != type_b:
        return diffs
    if type_a.endswith("json"):
        roots = (ours.root, theirs.root)
        return diffs + compare_json(name, json.loads(ours.body), json.loads(theirs.body), roots)
    if type_a.startswith("multipart/"):
        return diffs + compare_multipart(name, ours, theirs)
    if type_a.startswith("image/"):
        return diffs + compare_image(name, ours, theirs)
    if ours.body != theirs.body:
        detail = f"{len(ours.body)} vs {len(theirs.body)} bytes"
        diffs.append(Difference(name, "body", "", detail, ""))
    return diffs


def unexplained(diffs: list[Difference], known: tuple[Explained, ...]) -> Iterator[Difference]:
    """The differences no entry of ``known`` covers."""
    for diff in diffs:
        if not any(entry.covers(diff) for entry in known):
            yield diff
