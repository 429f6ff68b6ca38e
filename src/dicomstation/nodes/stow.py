"""STOW-RS (PS3.18 10.5): send files in streamed multipart batches, several at once.

A batch's body is a generator reading each file in chunks, so memory stays at
one chunk per request whatever the batch size; its exact Content-Length is
computed up front from the file sizes (no chunked encoding needed). Each retry
builds a new generator, so an exhausted body is never resent. The server's
answer (ReferencedSOPSequence / FailedSOPSequence, PS3.18 10.5.3) gives the
per-instance outcome recorded in the :class:`~dicomstation.transfer.TransferTracker`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydicom import dcmread
from pydicom.errors import InvalidDicomError as PydicomInvalid
from pydicom.filereader import read_file_meta_info

from dicomstation.config import ClientLimits
from dicomstation.dicomjson import first_value
from dicomstation.errors import AuthenticationError, CancelledError, NodeError
from dicomstation.nodes.http_errors import check_status, is_retryable, translate
from dicomstation.nodes.http_limits import read_capped
from dicomstation.nodes.multipart import (
    CRLF,
    close_delimiter,
    multipart_content_type,
    new_boundary,
    part_head,
)
from dicomstation.transfer import RetryPolicy, TransferTracker, check_cancel, with_retries

if TYPE_CHECKING:
    from dicomstation.nodes.base import CancelToken

__all__ = ["FAILURE_REASONS", "Outgoing", "StowSender", "batches", "outgoing"]

#: FailureReason (0008,1197) codes, PS3.18 Table I.2-1 / PS3.4 storage statuses
FAILURE_REASONS = {
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xB000: "coercion of data elements",
    0xB006: "elements discarded",
    0xB007: "data set does not match SOP class (warning)",
    0xC000: "cannot understand",
    0xC122: "transfer syntax not supported",
}
_STATUS_MEANING = {409: "the server rejected every instance", 415: "media type not supported"}


@dataclass(frozen=True)
class Outgoing:
    """A file to send, with its SOP Instance UID and size."""

    path: Path
    sop_uid: str
    size: int


def outgoing(paths: Iterable[Path], tracker: TransferTracker) -> Iterator[Outgoing]:
    """Read each file's SOP Instance UID (meta header only); unreadable files are failed."""
    for raw in paths:
        path = Path(raw)
        try:
            meta = read_file_meta_info(path)
            uid = str(meta.get("MediaStorageSOPInstanceUID", ""))
            if not uid:
                uid = str(
                    dcmread(
                        path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
                    ).SOPInstanceUID
                )
            yield Outgoing(path, uid, path.stat().st_size)
        except (PydicomInvalid, OSError, ValueError, EOFError, AttributeError) as exc:
            tracker.fail(str(path), f"{path}: not a DICOM Part 10 file ({type(exc).__name__})")


def batches(items: Iterable[Outgoing], max_files: int, max_bytes: int) -> Iterator[list[Outgoing]]:
    """Group files into batches of at most ``max_files`` files and about ``max_bytes``."""
    batch: list[Outgoing] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= max_files or size + item.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        yield batch


def _reason(item: Mapping[str, Any], tag: str) -> str:
    element = item.get(tag) or {}
    found = element.get("Value") or []
    if not found:
        return ""
    try:
        code = int(found[0])
    except (TypeError, ValueError):
        return str(found[0])
    return f"{FAILURE_REASONS.get(code, 'failure')} (0x{code:04X})"


class StowSender:
    """Send batches to ``base_url/studies``; record each instance's outcome."""

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        server: str,
        tracker: TransferTracker,
        *,
        policy: RetryPolicy,
        cancel: CancelToken | None = None,
        chunk_size: int = 1 << 20,
        max_answer_bytes: int = ClientLimits.max_qido_bytes,
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/studies"
        self.server = server
        self.tracker = tracker
        self.policy = policy
        self.cancel = cancel
        self.chunk_size = chunk_size
        self.max_answer_bytes = max_answer_bytes

    def send(self, batch: list[Outgoing]) -> None:
        """Send one batch with retries; failures after retries are recorded, not raised."""
        try:
            response = with_retries(
                lambda: self._post(batch),
                policy=self.policy,
                retryable=is_retryable,
                cancel=self.cancel,
            )
        except (AuthenticationError, CancelledError):
            raise
        except NodeError as exc:
            for item in batch:
                self.tracker.fail(item.sop_uid, str(exc))
            return
        self._record(batch, response)

    def _body(self, batch: list[Outgoing], boundary: str) -> tuple[Iterator[bytes], int]:
        heads = [
            part_head(
                boundary, {"Content-Type": "application/dicom", "Content-Length": str(o.size)}
            )
            for o in batch
        ]
        tail = close_delimiter(boundary)
        length = sum(len(h) + o.size + 2 for h, o in zip(heads, batch, strict=True)) + len(tail)

        def chunks() -> Iterator[bytes]:
            for head, item in zip(heads, batch, strict=True):
                yield head
                with item.path.open("rb") as handle:
                    while block := handle.read(self.chunk_size):
                        check_cancel(self.cancel, "send")
                        self.tracker.add_bytes(len(block))
                        yield block
                yield CRLF
            yield tail

        return chunks(), length

    def _post(self, batch: list[Outgoing]) -> httpx.Response:
        boundary = new_boundary()
        body, length = self._body(batch, boundary)  # a fresh generator for every attempt
        headers = {
            "Content-Type": multipart_content_type(boundary),
            "Content-Length": str(length),
            "Accept": "application/dicom+json",
        }
        uid = batch[0].sop_uid if len(batch) == 1 else None
        try:
            request = self.client.build_request("POST", self.url, content=body, headers=headers)
            response = self.client.send(request, stream=True)
            try:
                if response.status_code in (401, 403, 408, 429) or response.status_code >= 500:
                    check_status(response, server=self.server, operation="STOW-RS", uid=uid)
                # the answer is read whole only below the cap (a JSON answer's)
                content = read_capped(
                    response,
                    self.max_answer_bytes,
                    "max_qido_bytes",
                    server=self.server,
                    operation="STOW-RS",
                    uid=uid,
                )
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise translate(exc, server=self.server, operation="STOW-RS", uid=uid) from exc
        decoded = {"content-encoding", "content-length"}  # content is already decoded
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in decoded]
        return httpx.Response(response.status_code, headers=kept, content=content, request=request)

    def _record(self, batch: list[Outgoing], response: httpx.Response) -> None:
        status = response.status_code
        try:
            data = json.loads(response.content) if response.content else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        referenced = {
            first_value(i, "ReferencedSOPInstanceUID"): i
            for i in (data.get("00081199") or {}).get("Value", [])
        }
        failed = {
            first_value(i, "ReferencedSOPInstanceUID"): i
            for i in (data.get("00081198") or {}).get("Value", [])
        }
        listed = bool(referenced or failed)
        meaning = _STATUS_MEANING.get(status, response.reason_phrase or "")
        for item in batch:
            if item.sop_uid in failed:
                reason = _reason(failed[item.sop_uid], "00081197") or "failed"
                self.tracker.fail(item.sop_uid, f"{self.server} refused it: {reason}")
            elif item.sop_uid in referenced:
                warning = _reason(referenced[item.sop_uid], "00081196")
                if warning:
                    self.tracker.warn(item.sop_uid, warning)
                self.tracker.succeed([item.sop_uid])
            elif status < 300 and not listed:
                self.tracker.succeed([item.sop_uid])
            else:
                self.tracker.fail(
                    item.sop_uid,
                    f"{self.server} did not accept it (HTTP {status} {meaning})".rstrip(),
                )
        warning = response.headers.get("warning")
        if warning and status == 202:
            self.tracker.warn(self.url, warning)
