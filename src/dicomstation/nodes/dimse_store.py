"""C-STORE SCU: many instances over one association, streamed from disk as encoded.

Presentation contexts are built from what is sent: each file's SOP class and
transfer syntax are read from its File Meta Information (no pixel decoding), and
one context is proposed per distinct (SOP class, transfer syntax) pair, plus an
uncompressed fallback per SOP class. Files whose exact context is accepted are
sent by the fast path (:mod:`dimse_fastsend`: the file's bytes framed as they
are, no decoding); on the plain pynetdicom path a file is read and encoded again
by pynetdicom (its byte-streaming mode is a process-wide switch we do not set).
More than 128 contexts are split over several associations; ``associations=N``
sends N runs of the files on N associations at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.filereader import dcmread
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import build_context
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import PresentationContext

from dicomstation.config import DimseServer
from dicomstation.errors import (
    AssociationError,
    CancelledError,
    ConfigError,
    ConnectionFailedError,
    RemoteStatusError,
)
from dicomstation.models import Phase, ProgressEvent, TransferReport
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse_assoc import MAX_CONTEXTS, open_association
from dicomstation.nodes.dimse_errors import aborted, check_status, socket_error
from dicomstation.nodes.dimse_fastsend import SUCCESS, StoreChannel
from dicomstation.nodes.dimse_filemeta import read_file_meta
from dicomstation.nodes.dimse_pdu import own_socket
from dicomstation.nodes.dimse_sendruns import MAX_ASSOCIATIONS, Relay, fail_unsent, split_runs
from dicomstation.nodes.dimse_transport import use_fast

__all__ = ["MAX_ASSOCIATIONS", "Outgoing", "scan_outgoing", "send_files"]

Progress = Callable[[ProgressEvent], None]
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_FALLBACK_TS: list[str | UID] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_RETRIES = 2


@dataclass(frozen=True)
class Outgoing:
    """One file to send, described by its File Meta Information."""

    path: Path
    sop_class: str
    sop_uid: str
    transfer_syntax: str
    size: int
    offset: int = 0


def scan_outgoing(paths: Iterable[Path]) -> tuple[list[Outgoing], dict[str, str]]:
    """Read SOP class, SOP instance and transfer syntax of each file's header.

    Returns the sendable files and, for the others, ``{path: reason}``.
    """
    items: list[Outgoing] = []
    failed: dict[str, str] = {}
    for raw in paths:
        path = raw if isinstance(raw, Path) else Path(raw)
        try:
            items.append(_describe(path))
        except (OSError, PydicomInvalidDicomError, AttributeError, ValueError) as exc:
            failed[str(path)] = f"not a DICOM file with complete File Meta Information: {exc}"
    return items, failed


def _describe(path: Path) -> Outgoing:
    """One file's meta group: our quick reader (dimse_filemeta), else pydicom's."""
    fast = read_file_meta(path)
    if fast is not None:
        classes = (fast.sop_class, fast.sop_instance, fast.transfer_syntax)
        return Outgoing(path, *classes, fast.size, fast.offset)
    ds, offset = split_dataset(path)
    sop_class, sop_uid = str(ds.MediaStorageSOPClassUID), str(ds.MediaStorageSOPInstanceUID)
    syntax = str(ds.TransferSyntaxUID)
    return Outgoing(path, sop_class, sop_uid, syntax, path.stat().st_size, offset)


def _contexts_for(items: Sequence[Outgoing]) -> list[PresentationContext]:
    pairs = dict.fromkeys((i.sop_class, i.transfer_syntax) for i in items)
    contexts = [build_context(sop, [ts]) for sop, ts in pairs]
    contexts += [build_context(sop, _FALLBACK_TS) for sop in dict.fromkeys(s for s, _ in pairs)]
    return contexts


def _groups(items: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """Split ``items`` so no association needs more than 128 contexts (order kept)."""
    groups: list[list[Outgoing]] = []
    current: list[Outgoing] = []
    pairs: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for item in items:
        pair = (item.sop_class, item.transfer_syntax)
        # as _contexts_for counts them: one per (class, syntax) pair + one fallback per class
        grown = len(pairs | {pair}) + len(classes | {item.sop_class})
        if current and grown > MAX_CONTEXTS:
            groups.append(current)
            current, pairs, classes = [], set(), set()
        current.append(item)
        pairs.add(pair)
        classes.add(item.sop_class)
    if current:
        groups.append(current)
    return groups


@dataclass
class _SendState:
    server: DimseServer
    total: int
    progress: Progress | None
    cancel: CancelToken | None
    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0
    broken: bool = False
    items: list[Outgoing] = field(default_factory=list)  # the run's sendable files

    def emit(self, phase: Phase, uid: str | None, message: str = "") -> None:
        if self.progress is not None:
            done = len(self.succeeded) + len(self.failed)
            self.progress(
                ProgressEvent("C-STORE", phase, done, self.total, self.nbytes, uid, message)
            )


def _accepted(assoc: Any) -> dict[tuple[str, str], int]:
    """Accepted (SOP class, transfer syntax) -> presentation context ID."""
    return {
        (str(cx.abstract_syntax), str(cx.transfer_syntax[0])): int(cx.context_id)
        for cx in assoc.accepted_contexts
    }


def _send_one(
    assoc: Any,
    item: Outgoing,
    accepted: dict[tuple[str, str], int],
    msg_id: int,
    state: _SendState,
    channel: StoreChannel | None,
) -> None:
    context_id = accepted.get((item.sop_class, item.transfer_syntax))
    if context_id is not None and channel is not None:
        # PS3.5 A.5: a deflated data set of odd length is padded with one null byte
        pad = item.transfer_syntax == DeflatedExplicitVRLittleEndian
        status = channel.send_file(
            context_id,
            item.path,
            item.offset,
            item.sop_class,
            item.sop_uid,
            msg_id,
            pad_odd=pad,
        )
    elif context_id is not None:
        # plain path: pynetdicom streams a file unchanged only under a process-wide switch
        # (_config.STORE_SEND_CHUNKED_DATASET) we leave alone, so it decodes and encodes
        status = assoc.send_c_store(dcmread(item.path), msg_id=msg_id)
    elif item.transfer_syntax in _UNCOMPRESSED and any(
        (item.sop_class, str(ts)) in accepted for ts in _FALLBACK_TS
    ):
        # the peer refused this uncompressed encoding: pynetdicom converts VR/endianness
        status = assoc.send_c_store(dcmread(item.path), msg_id=msg_id)
        state.warnings[item.sop_uid] = "sent in another uncompressed transfer syntax"
    else:
        state.failed[item.sop_uid] = (
            f"{state.server.name} accepted no presentation context for SOP class "
            f"{item.sop_class} in transfer syntax {item.transfer_syntax} ({item.path})"
        )
        return
    if status is SUCCESS:  # the fast channel's plain Success: no status mapping needed
        state.succeeded.append(item.sop_uid)
        state.nbytes += item.size
        return
    if not status and not assoc.is_established and assoc.is_aborted:
        raise aborted(server=state.server.name, operation="C-STORE", uid=item.sop_uid)
    outcome = check_status(
        status,
        server=state.server.name,
        operation="C-STORE",
        uid=item.sop_uid,
        timeout=state.server.timeout,
    )
    if outcome.warning:
        state.warnings[item.sop_uid] = outcome.warning
    state.succeeded.append(item.sop_uid)
    state.nbytes += item.size


def _send_items(
    assoc: Any,
    items: list[Outgoing],
    accepted: dict[tuple[str, str], int],
    state: _SendState,
    channel: StoreChannel | None,
) -> list[Outgoing]:
    """Send ``items``; return those left when the association died."""
    for index, item in enumerate(items):
        if state.cancel is not None and state.cancel.cancelled:
            raise CancelledError(
                f"C-STORE to {state.server.name} cancelled after "
                f"{len(state.succeeded)} of {state.total} instances"
            )
        try:
            _send_one(assoc, item, accepted, index % 65535 + 1, state, channel)
        except RemoteStatusError as exc:
            state.failed[item.sop_uid] = str(exc)
        except OSError as exc:  # fast path: socket error, timeout or abort
            error = socket_error(
                exc,
                server=state.server.name,
                operation="C-STORE",
                uid=item.sop_uid,
                timeout=state.server.timeout,
            )
            state.failed[item.sop_uid] = f"{error} ({item.path})"
            state.broken = True
            return items[index + 1 :]
        except (ConnectionFailedError, AssociationError) as exc:
            if assoc.is_established:
                raise
            # this instance killed or stalled the association: fail it (no endless
            # resend of a file the peer chokes on) and go on with a fresh association
            state.failed[item.sop_uid] = str(exc)
            return items[index + 1 :]
        state.emit(Phase.PROGRESS, item.sop_uid)
    return []


def _send_group(group: list[Outgoing], state: _SendState) -> list[Outgoing]:
    """Send a group over one association; return what is left if the association died.

    Files whose exact (SOP class, transfer syntax) was accepted go first, through
    the fast path (:mod:`dimse_fastsend`, socket taken once for all of them);
    the others after, through pynetdicom.
    """
    with open_association(state.server, _contexts_for(group), "C-STORE") as assoc:
        accepted = _accepted(assoc)
        exact = [i for i in group if (i.sop_class, i.transfer_syntax) in accepted]
        others = [i for i in group if (i.sop_class, i.transfer_syntax) not in accepted]
        state.broken = False
        if exact and use_fast(assoc):
            with own_socket(assoc, state.server.timeout) as sock:
                channel = StoreChannel(sock, int(assoc.dimse.maximum_pdu_size or 0))
                try:
                    left = _send_items(assoc, exact, accepted, state, channel)
                finally:
                    channel.close()
            if state.broken:  # the socket is in an unknown state: end the association
                assoc.abort()
        else:
            left = _send_items(assoc, exact, accepted, state, None)
        if left or state.broken:
            return left + others
        return _send_items(assoc, others, accepted, state, None)


def _send_with_retries(group: list[Outgoing], state: _SendState) -> None:
    """Send a group; if the association dies mid-way, resend the rest on a new one."""
    left = group
    for attempt in range(_RETRIES + 1):
        try:
            left = _send_group(left, state)
        except (ConnectionFailedError, AssociationError):
            if attempt == _RETRIES or not state.succeeded:
                raise
            done = set(state.succeeded) | set(state.failed)
            left = [item for item in left if item.sop_uid not in done]
        if not left:
            return
    for item in left:
        state.failed[item.sop_uid] = "association lost; retries exhausted"


def send_files(
    server: DimseServer,
    paths: Iterable[Path],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    associations: int = 1,
) -> TransferReport:
    """C-STORE every file to ``server``; per-instance failures go into the report.

    Parameters
    ----------
    associations : int
        How many associations send at once (default 1). The files are split into
        that many consecutive runs (series stay together), each sent on its own
        association by its own thread: faster when the receiver handles
        associations in parallel (Orthanc, ``storescp --fork``, most PACS); a
        receiver that serves one at a time makes the others wait.

    Raises
    ------
    ConfigError
        When ``associations`` is not between 1 and :data:`MAX_ASSOCIATIONS`.
    ConnectionFailedError, AssociationError, AuthenticationError
        When no association can be made (or it keeps dying after retries).
    CancelledError
        When ``cancel`` is set; instances already sent stay sent.
    """
    if not 1 <= associations <= MAX_ASSOCIATIONS:
        raise ConfigError(f"associations={associations}: expected 1 to {MAX_ASSOCIATIONS}")
    started = time.perf_counter()
    files = list(paths)
    # each association's thread reads the file meta of its own run: the reading
    # overlaps with the other runs' sending instead of delaying every one
    runs = split_runs(files, associations)
    states = [_SendState(server, len(files), None, cancel) for _ in runs] or [
        _SendState(server, len(files), None, cancel)
    ]
    relay = Relay(states, progress)
    relay.emit(Phase.STARTED)
    if len(runs) <= 1:
        _send_run(runs[0] if runs else [], states[0])
    else:
        with ThreadPoolExecutor(len(runs), thread_name_prefix="c-store") as pool:
            futures = [
                pool.submit(_send_run, run, state) for run, state in zip(runs, states, strict=True)
            ]
            errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None and not any(s.succeeded for s in states):
            raise first
        fail_unsent([s.items for s in states], states, errors)
    relay.emit(Phase.DONE)
    return TransferReport(
        "C-STORE",
        tuple(uid for s in states for uid in s.succeeded),
        (),
        {k: v for s in states for k, v in s.failed.items()},
        {k: v for s in states for k, v in s.warnings.items()},
        sum(s.nbytes for s in states),
        time.perf_counter() - started,
    )


def _send_run(run: list[Path], state: _SendState) -> None:
    state.items, unreadable = scan_outgoing(run)
    state.failed.update(unreadable)
    for group in _groups(state.items):
        _send_with_retries(group, state)
