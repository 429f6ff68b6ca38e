"""The DICOMweb node: QIDO-RS, WADO-RS and STOW-RS over one injected httpx.Client.

Compared with dicomweb-client and Slicer's DICOMwebBrowser, this node streams
every transfer (bounded memory), keeps several series or instances in flight
(threads over a shared connection pool), retries dropped connections and
429/5xx with backoff, resumes interrupted retrieves, negotiates the transfer
syntax, pages QIDO-RS lazily, and reports progress and per-instance outcomes.

Example
-------
>>> node = DicomWebNode.from_config(settings.server("pacs"))      # doctest: +SKIP
>>> studies = node.find(Query(Level.STUDY, {"PatientName": "DOE^*"}))
>>> report = node.retrieve(studies[0].study_uid, into=db)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from dicomstation.auth import http_client
from dicomstation.config import ClientLimits, DicomWebServer
from dicomstation.errors import ProtocolError, RemoteStatusError
from dicomstation.models import Level, Query, TransferReport
from dicomstation.nodes.base import CancelToken, ProgressCallback, Ref, TypedFinds
from dicomstation.nodes.http_errors import check_status, is_retryable, translate
from dicomstation.nodes.http_limits import JsonArrayStream as JsonStream
from dicomstation.nodes.http_limits import read_capped, read_capped_chunks
from dicomstation.nodes.qido import (
    Page,
    encode_query,
    iter_matches,
    query_params,
    query_path,
    ref_from_json,
)
from dicomstation.nodes.retrieve_plan import RetrievePlanner
from dicomstation.nodes.stow import StowSender, batches, outgoing
from dicomstation.nodes.url_paths import checked_path
from dicomstation.nodes.wado import (
    DICOM_ACCEPTS,
    AcceptNegotiator,
    WadoFetcher,
    read_parts,
)
from dicomstation.transfer import RetryPolicy, TransferTracker, run_parallel, with_retries

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["DicomWebNode"]

_JSON_TYPES = ("application/dicom+json", "application/json")


class DicomWebNode(TypedFinds):
    """A DICOMweb server (QIDO-RS / WADO-RS / STOW-RS) as a :class:`DicomNode`.

    Parameters
    ----------
    name : str
        Server name, used in errors and progress.
    url : str
        The DICOMweb root (``https://host/dicom-web``).
    client : httpx.Client
        The HTTP client (auth, TLS, proxy, timeouts already set); see
        :func:`dicomstation.auth.http_client`.
    concurrency : int
        Series/instances (retrieve) or batches (store) in flight at once.
    retry : RetryPolicy
        Retries for connection errors and 408/429/5xx.
    page_size : int
        QIDO-RS results per request.
    stow_batch_files, stow_batch_bytes : int
        Size bounds of one STOW-RS request.
    limits : ClientLimits
        How much the server may make us read, request or wait.
    """

    def __init__(
        self,
        name: str,
        url: str,
        client: httpx.Client,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        page_size: int = 200,
        stow_batch_files: int = 16,
        stow_batch_bytes: int = 64 << 20,
        accepts: Sequence[str] = DICOM_ACCEPTS,
        limits: ClientLimits | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.client = client
        self.concurrency = max(1, concurrency)
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.stow_batch_files = stow_batch_files
        self.stow_batch_bytes = stow_batch_bytes
        self.negotiator = AcceptNegotiator(accepts)
        self.limits = limits or ClientLimits()

    @classmethod
    def from_config(cls, server: DicomWebServer, *, concurrency: int = 4) -> DicomWebNode:
        """A node for a configured server (credentials, TLS, proxy, timeout and limits applied)."""
        client = http_client(server, connections=max(32, concurrency * 2))
        retry = RetryPolicy(max_retry_after=server.limits.max_retry_after)
        return cls(
            server.name,
            server.url,
            client,
            concurrency=concurrency,
            retry=retry,
            limits=server.limits,
        )

    def __repr__(self) -> str:
        return f"DicomWebNode({self.name!r}, {self.url!r})"

    def __enter__(self) -> DicomWebNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client and its connections."""
        self.client.close()

    # -- plain requests ----------------------------------------------------------------
    def _open(
        self,
        path: str,
        *,
        operation: str,
        uid: str | None = None,
        params: list[tuple[str, str]] | None = None,
        accept: str = "application/dicom+json",
    ) -> httpx.Response:
        """GET with retries; an open streamed response with a 2xx status (caller closes it)."""

        checked_path(path, server=self.name, operation=operation, uid=uid)

        def attempt() -> httpx.Response:
            query = "?" + encode_query(params) if params else ""
            try:
                request = self.client.build_request(
                    "GET", f"{self.url}/{path}{query}", headers={"Accept": accept}
                )
                response = self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise translate(exc, server=self.name, operation=operation, uid=uid) from exc
            try:
                check_status(response, server=self.name, operation=operation, uid=uid)
            except BaseException:
                response.close()
                raise
            return response

        return with_retries(attempt, policy=self.retry, retryable=is_retryable)

    def _get(
        self,
        path: str,
        *,
        operation: str,
        uid: str | None = None,
        params: list[tuple[str, str]] | None = None,
        accept: str = "application/dicom+json",
        limit: tuple[int, str],
    ) -> bytes:
        """The body of a GET, refused beyond ``limit`` (bytes, name of the setting)."""
        response = self._open(path, operation=operation, uid=uid, params=params, accept=accept)
        try:
            return read_capped(response, *limit, server=self.name, operation=operation, uid=uid)
        except httpx.HTTPError as exc:
            raise translate(exc, server=self.name, operation=operation, uid=uid) from exc
        finally:
            response.close()

    def _get_json(
        self,
        path: str,
        *,
        operation: str,
        uid: str | None = None,
        params: list[tuple[str, str]] | None = None,
    ) -> tuple[JsonStream, list[str]]:
        """A JSON array answer, streamed: (its objects, parsed as read; Warning headers)."""
        response = self._open(path, operation=operation, uid=uid, params=params)
        warnings = response.headers.get_list("warning")
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code != 204 and media not in _JSON_TYPES:
            response.close()
            raise ProtocolError(
                f"expected application/dicom+json, got {media or 'none'!r}",
                server=self.name,
                operation=operation,
                uid=uid,
            )
        limit = self.limits.max_qido_bytes
        stream = JsonStream(response, limit, server=self.name, operation=operation, uid=uid)
        return stream, warnings

    # -- QIDO-RS -------------------------------------------------------------------------
    def echo(self) -> float:
        """A cheap QIDO-RS (``studies?limit=1``); return the seconds it took."""
        started = time.perf_counter()
        results, _ = self._get_json("studies", operation="QIDO-RS", params=[("limit", "1")])
        for _obj in results:
            break
        results.close()
        return time.perf_counter() - started

    def iter_find(self, query: Query) -> Iterator[Ref]:
        """Yield studies/series/instances matching ``query``, paging lazily.

        Warning headers of the server are issued as :class:`~.qido.QidoWarning`.
        """
        level = Level.parse(query.level)
        path = query_path(query)
        query_params(query, None, 0)  # validate before the first request

        def fetch(limit: int | None, offset: int) -> Page:
            return self._get_json(
                path,
                operation="QIDO-RS",
                uid=query.series_uid or query.study_uid,
                params=query_params(query, limit, offset),
            )

        for obj in iter_matches(
            fetch, query, page_size=self.page_size, server=self.name, limits=self.limits
        ):
            yield ref_from_json(level, obj)

    def find(self, query: Query) -> list[Ref]:
        """All matches of :meth:`iter_find`."""
        return list(self.iter_find(query))

    def metadata(self, study_uid: str, series_uid: str | None = None) -> list[Mapping[str, Any]]:
        """WADO-RS metadata: DICOM JSON of every instance, without fetching pixel data."""
        path = f"studies/{study_uid}" + (f"/series/{series_uid}" if series_uid else "")
        results, _ = self._get_json(
            path + "/metadata", operation="WADO-RS metadata", uid=series_uid or study_uid
        )
        return list(results)

    # -- WADO-RS -------------------------------------------------------------------------
    def retrieve(
        self,
        study_uid: str,
        series_uids: Sequence[str] = (),
        sop_uids: Sequence[str] = (),
        *,
        into: Database,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """Fetch a study, some of its series, or some instances into ``into``.

        Instances already in the database are skipped; several series (or
        instances) are fetched at once (``concurrency``); each complete instance
        is indexed as soon as it arrives, so an interrupted fetch resumes where it
        stopped. Failures after retries are listed in the report.

        Raises
        ------
        AuthenticationError
            Credentials refused.
        CancelledError
            ``cancel`` was triggered (complete instances stay in the database).
        NodeError
            The listing itself failed (unknown study, unreachable server...).
        """
        tracker = TransferTracker("fetch", progress)
        cancel = cancel or CancelToken()  # so Ctrl-C can stop the worker threads
        planner = RetrievePlanner(self.name, self.iter_find)
        targets = planner.plan(study_uid, series_uids, sop_uids, into, tracker)
        tracker.start(tracker.total)
        fetcher = WadoFetcher(
            self.client,
            self.url,
            self.name,
            into,
            tracker,
            negotiator=self.negotiator,
            policy=self.retry,
            lister=planner.series_instances,
            cancel=cancel,
            max_instance_bytes=self.limits.max_instance_bytes,
        )
        try:
            run_parallel(targets, fetcher.fetch, workers=self.concurrency, cancel=cancel)
        finally:
            fetcher.close()
        return tracker.report()

    def iter_frames(
        self, study_uid: str, series_uid: str, sop_uid: str, frames: Sequence[int]
    ) -> Iterator[bytes]:
        """Yield the pixel data of frames (1-based numbers), as sent (any transfer syntax)."""
        path = f"studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/" + ",".join(
            str(int(f)) for f in frames
        )
        accept = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        checked_path(path, server=self.name, operation="WADO-RS frames", uid=sop_uid)
        try:
            with self.client.stream(
                "GET", f"{self.url}/{path}", headers={"Accept": accept}
            ) as response:
                check_status(response, server=self.name, operation="WADO-RS frames", uid=sop_uid)
                for part in read_parts(
                    response,
                    server=self.name,
                    operation="WADO-RS frames",
                    uid=sop_uid,
                ):
                    yield read_capped_chunks(
                        part.views(),
                        self.limits.max_instance_bytes,
                        "max_instance_bytes",
                        server=self.name,
                        operation="WADO-RS frames",
                        uid=sop_uid,
                    )
        except httpx.HTTPError as exc:
            raise translate(exc, server=self.name, operation="WADO-RS frames", uid=sop_uid) from exc

    def rendered(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        frames: Sequence[int] = (),
        media_type: str = "image/png",
        params: Mapping[str, str] | None = None,
        thumbnail: bool = False,
    ) -> bytes:
        """A rendered (or ``thumbnail=True``) image of a study, series, instance or frames."""
        path = f"studies/{study_uid}"
        path += f"/series/{series_uid}" if series_uid else ""
        path += f"/instances/{sop_uid}" if series_uid and sop_uid else ""
        path += "/frames/" + ",".join(str(int(f)) for f in frames) if sop_uid and frames else ""
        path += "/thumbnail" if thumbnail else "/rendered"
        operation = "WADO-RS thumbnail" if thumbnail else "WADO-RS rendered"
        uid = sop_uid or series_uid or study_uid
        query = list((params or {}).items())
        try:
            return self._get(
                path,
                operation=operation,
                uid=uid,
                params=query,
                accept=media_type,
                limit=(self.limits.max_instance_bytes, "max_instance_bytes"),
            )
        except RemoteStatusError as exc:
            if not thumbnail or exc.status not in (404, 406, 501):
                raise
        # Thumbnails are optional in PS3.18 (Orthanc 1.10's plugin has none): render small.
        small = {"viewport": "128,128", **(params or {})}
        return self.rendered(
            study_uid, series_uid, sop_uid, frames=frames, media_type=media_type, params=small
        )

    # -- STOW-RS -------------------------------------------------------------------------
    def store(
        self,
        files: Iterable[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """Send DICOM files with STOW-RS, in streamed batches, several at once.

        Per-instance outcomes (accepted, refused with reason, warnings) are in the
        report; unreadable files are failed locally without being sent.

        Raises
        ------
        AuthenticationError
            Credentials refused.
        CancelledError
            ``cancel`` was triggered.
        """
        tracker = TransferTracker("send", progress)
        cancel = cancel or CancelToken()
        items = list(outgoing(files, tracker))
        tracker.start(len(items) + len(tracker.failed))
        sender = StowSender(
            self.client,
            self.url,
            self.name,
            tracker,
            policy=self.retry,
            cancel=cancel,
            max_answer_bytes=self.limits.max_qido_bytes,
        )
        groups = batches(items, self.stow_batch_files, self.stow_batch_bytes)
        run_parallel(groups, sender.send, workers=self.concurrency, cancel=cancel)
        return tracker.report()
