"""QIDO-RS (PS3.18 10.6): query URLs, matching parameters, and lazy paging.

Matching keys are DICOM keywords or 8-hex-digit tags; values follow the
standard's matching rules (wildcards ``*`` / ``?``, DA/TM/DT ranges
``20200101-20201231``, UID lists separated by ``\\`` or ``,``). Values are
checked here so a typo gives a clear error instead of an empty answer.

Paging is lazy: pages of ``page_size`` are requested only when the caller wants
more, and a streamed page is read only as far as the caller reads. It stops on
the query's limit, on an empty page, on a short page (unless the server warned
that more results exist), and, for servers that ignore ``offset`` and send the
same page again, as soon as a page brings nothing new. A server that keeps
sending new results is stopped by :class:`~dicomstation.config.ClientLimits`
(``max_qido_results``, ``max_qido_requests``) with a clear error.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from pydicom.datadict import dictionary_VR

from dicomstation.config import ClientLimits
from dicomstation.dicomjson import first_value, tag_hex
from dicomstation.errors import ConfigError, ProtocolError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, StudyRef

__all__ = [
    "Page",
    "QidoWarning",
    "encode_query",
    "iter_matches",
    "query_params",
    "query_path",
    "ref_from_json",
    "validate_value",
]

log = logging.getLogger(__name__)

Json = Mapping[str, Any]
#: a page as answered by the server: (JSON results, Warning header values)
Page = tuple[Iterable[Json], list[str]]

_DA = r"\d{8}"
_TM = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
_DT = r"\d{4}(?:\d{2}(?:\d{2}(?:" + _TM + r")?)?)?(?:[+-]\d{4})?"
_RANGE = {
    vr: re.compile(rf"^(?:{p}|{p}-|-{p}|{p}-{p})$")
    for vr, p in (("DA", _DA), ("TM", _TM), ("DT", _DT))
}
_UID = re.compile(r"^[0-9.]+\*?$")
_UID_KEYS = {
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
    "00080018": "SOPInstanceUID",
}


class QidoWarning(UserWarning):
    """A server's ``Warning`` header on a QIDO-RS answer (e.g. results truncated)."""


def query_path(query: Query) -> str:
    """The QIDO-RS resource path (relative to the DICOMweb root) for ``query``."""
    level = Level.parse(query.level)
    study, series = query.study_uid, query.series_uid
    if level is Level.STUDY:
        return "studies"
    if level is Level.SERIES:
        return f"studies/{study}/series" if study else "series"
    if level is Level.IMAGE:
        if study and series:
            return f"studies/{study}/series/{series}/instances"
        return f"studies/{study}/instances" if study else "instances"
    raise ConfigError("DICOMweb has no patient level: query studies (--level study) instead")


def _vr(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16)))
    except KeyError:
        return ""


def validate_value(key: str, value: str) -> tuple[str, str]:
    """Check one matching key and value; return (QIDO parameter name, value to send).

    Raises
    ------
    ConfigError
        For an unknown keyword, a malformed date/time range or UID list.
    """
    try:
        tag = tag_hex(key)
    except KeyError:
        raise ConfigError(f"unknown DICOM attribute {key!r} in the query") from None
    vr = _vr(tag)
    text = value.strip()
    if vr in _RANGE and text and not _RANGE[vr].match(text):
        formats = {"DA": "YYYYMMDD", "TM": "HHMMSS", "DT": "YYYYMMDDHHMMSS"}[vr]
        raise ConfigError(
            f"{key}={value!r}: expected {formats}, {formats}-, -{formats} or {formats}-{formats}"
        )
    if vr == "UI" and text:
        uids = [u.strip() for u in re.split(r"[\\,]", text)]
        bad = [u for u in uids if not _UID.match(u)]
        if bad:
            raise ConfigError(f"{key}: {bad[0]!r} is not a UID")
        text = ",".join(uids)  # QIDO-RS lists UIDs with commas
    return key if not re.fullmatch(r"[0-9A-Fa-f]{8}", key) else tag, text


def query_params(query: Query, limit: int | None, offset: int) -> list[tuple[str, str]]:
    """QIDO-RS query parameters for ``query`` and one page (``limit``/``offset``)."""
    params = [validate_value(k, str(v)) for k, v in query.filters.items()]
    for name in query.include_fields:
        if name.lower() == "all":
            params.append(("includefield", "all"))
        else:
            try:
                tag_hex(name)
            except KeyError:
                raise ConfigError(f"unknown DICOM attribute {name!r} in includefield") from None
            params.append(("includefield", name))
    if query.fuzzy:
        params.append(("fuzzymatching", "true"))
    if limit is not None:
        params.append(("limit", str(limit)))
    if offset:
        params.append(("offset", str(offset)))
    return params


def encode_query(params: Sequence[tuple[str, str]]) -> str:
    """Percent-encode query parameters, leaving matching characters (``* ? ^ ,``) as they are.

    Some servers (Orthanc's DICOMweb plugin 1.7) do not percent-decode query
    values, so ``PatientName=DOE%5E%2A`` would match nothing; RFC 3986 lets
    these characters appear literally in a query.
    """
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='*?^,.-_~:/')}" for k, v in params)


def _identity(level: Level, obj: Json) -> str:
    keyword = {
        Level.STUDY: "StudyInstanceUID",
        Level.SERIES: "SeriesInstanceUID",
        Level.IMAGE: "SOPInstanceUID",
    }.get(level, "PatientID")
    return first_value(obj, keyword) or repr(sorted(obj.items()))


def _close(results: Iterable[Json]) -> None:
    close = getattr(results, "close", None)
    if callable(close):
        close()


def _over(what: str, limit: int, key: str, server: str) -> ProtocolError:
    return ProtocolError(
        f"{what} {limit:,}; stopped (give a --limit, narrow the query, or raise "
        f"limits.{key} in the server's settings)",
        server=server,
        operation="QIDO-RS",
    )


def iter_matches(
    fetch: Callable[[int | None, int], Page],
    query: Query,
    *,
    page_size: int = 200,
    server: str = "",
    limits: ClientLimits | None = None,
) -> Iterator[Json]:
    """Yield QIDO-RS results page by page, only as far as the caller reads.

    Parameters
    ----------
    fetch : callable
        ``fetch(limit, offset)`` returns one page (results, Warning header values);
        the results may be a lazy iterable with a ``close()`` (a streamed answer),
        closed as soon as enough of it was read.
    query : Query
        ``query.limit`` caps the total (None: everything), ``query.offset`` starts.
    page_size : int
        Results per request.
    server : str
        Named in warnings and errors.
    limits : ClientLimits
        ``max_qido_results`` and ``max_qido_requests`` bound one query.

    Raises
    ------
    ProtocolError
        When the server would bring more results, or need more requests, than
        the limits allow (a server that ignores ``offset`` and keeps sending new
        UIDs included).
    """
    limits = limits or ClientLimits()
    level = Level.parse(query.level)
    seen: set[str] = set()
    offset, remaining, requests = query.offset, query.limit, 0
    while remaining is None or remaining > 0:
        if requests >= limits.max_qido_requests:
            raise _over("needs more requests than", requests, "max_qido_requests", server)
        requests += 1
        want = page_size if remaining is None else min(page_size, remaining)
        results, warns = fetch(want, offset)
        for text in warns:
            log.warning("QIDO-RS on %s: server warning: %s", server, text)
            warnings.warn(QidoWarning(f"{server}: {text}"), stacklevel=2)
        count = fresh = 0
        try:
            for obj in results:  # a streamed page is read only as far as needed
                count += 1
                key = _identity(level, obj)
                if key in seen:
                    continue
                if len(seen) >= limits.max_qido_results:
                    raise _over("more results than", len(seen), "max_qido_results", server)
                seen.add(key)
                fresh += 1
                yield obj
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
        finally:
            _close(results)
        if not fresh:
            if count:
                log.info("QIDO-RS on %s: server repeats results (ignores offset); stopping", server)
            return
        offset += count
        if count < want and not warns:
            return


def ref_from_json(level: Level, obj: Json) -> StudyRef | SeriesRef | InstanceRef:
    """The typed ref for one QIDO-RS result."""
    if level is Level.STUDY:
        return StudyRef.from_json(obj)
    if level is Level.SERIES:
        return SeriesRef.from_json(obj)
    return InstanceRef.from_json(obj)
