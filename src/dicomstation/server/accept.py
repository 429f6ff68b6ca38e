"""Accept-header negotiation for WADO-RS (PS3.18 8.7): media types and transfer syntaxes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException

__all__ = ["EXPLICIT_LE", "JSON_TYPES", "Acceptable", "parse_accept", "require_json"]

EXPLICIT_LE = "1.2.840.10008.1.2.1"
JSON_TYPES = frozenset({"application/dicom+json", "application/json", "application/*", "*/*"})


@dataclass(frozen=True)
class Acceptable:
    """One acceptable representation: the part media type and transfer syntax (``*`` any)."""

    media_type: str
    transfer_syntax: str | None = None
    multipart: bool = True


def _params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip().lower()] = value.strip().strip('"')
    return out


def parse_accept(header: str | None, default_type: str) -> list[Acceptable]:
    """Parse an Accept header into acceptable representations, best first.

    ``multipart/related; type="application/dicom"; transfer-syntax=*`` gives
    ``Acceptable("application/dicom", "*")``; ``*/*`` or no header gives the default type.
    """
    if not header:
        return [Acceptable(default_type)]
    found: list[tuple[float, int, Acceptable]] = []
    for index, entry in enumerate(header.split(",")):
        pieces = [p.strip() for p in entry.split(";")]
        media = pieces[0].lower()
        params = _params(pieces[1:])
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 1.0
        syntax = params.get("transfer-syntax")
        if media == "multipart/related":
            part = params.get("type", default_type).lower()
            found.append((quality, index, Acceptable(part, syntax, True)))
        elif media in ("*/*", "multipart/*"):
            found.append((quality, index, Acceptable(default_type, syntax, True)))
        else:
            found.append((quality, index, Acceptable(media, syntax, False)))
    found.sort(key=lambda item: (-item[0], item[1]))
    return [item[2] for item in found if item[0] > 0]


def require_json(header: str | None) -> None:
    """Refuse (406) an Accept header that allows no JSON answer (``application/dicom+xml``...).

    Raises
    ------
    fastapi.HTTPException
        406 naming the media type the server gives (application/dicom+json).
    """
    accepted = parse_accept(header, "application/dicom+json")
    if not any(a.media_type in JSON_TYPES for a in accepted):
        raise HTTPException(
            406,
            f"cannot answer as {header!r}: this server gives application/dicom+json "
            "(application/dicom+xml is not supported)",
        )
