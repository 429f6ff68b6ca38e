"""C-GET and C-MOVE into the local database.

A C-GET of a study or series the database holds nothing of asks for all of it
at once, with no listing (:mod:`dimse_listing`). Otherwise both start from the
instance list (C-FIND at IMAGE level) so that what the database already has is
skipped before anything is transferred: when nothing is present the whole
study/series is requested at once, otherwise only the missing instances are
requested (IMAGE level, UID lists). Received datasets go through a
:class:`~dicomstation.nodes.dimse_receive.Receiver` (raw bytes in files named by us,
checked against the sub-operation's command; a C-GET's fast path answers Success
once the file is safe on disk and indexes in batches, the other paths once it is
indexed).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import build_context, evt
from pynetdicom.presentation import PresentationContext

from dicomstation.config import DimseServer, LocalNodeConfig
from dicomstation.errors import CancelledError, ConfigError
from dicomstation.models import InstanceRef, ProgressEvent
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse_assoc import open_association, receive_contexts
from dicomstation.nodes.dimse_errors import (
    StatusCategory,
    check_status,
    socket_error,
    status_category,
)
from dicomstation.nodes.dimse_fastget import fast_get, fast_get_available
from dicomstation.nodes.dimse_query import QueryRoot, model_uid
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.listener import StorageListener

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = [
    "Request",
    "RetrieveMethod",
    "plan_request",
    "retrieve_get",
    "retrieve_get_rounds",
    "retrieve_move",
]

Progress = Callable[[ProgressEvent], None]
_UID_LIST_CHUNK = 400
_EXTERNAL_WAIT = 30.0


class RetrieveMethod(enum.StrEnum):
    """How instances are pulled from a DIMSE peer."""

    GET = "C-GET"
    MOVE = "C-MOVE"


@dataclass(frozen=True)
class Request:
    """One C-GET/C-MOVE identifier to send, and what it should bring."""

    identifier: Dataset
    expected: tuple[str, ...]


def _identifier(
    level: str,
    study_uid: str,
    series: Sequence[str] = (),
    sops: Sequence[str] = (),
    patient_id: str = "",
) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    if patient_id:
        ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid
    if series:
        ds.SeriesInstanceUID = "\\".join(series)
    if sops:
        ds.SOPInstanceUID = "\\".join(sops)
    return ds


def plan_request(
    study_uid: str,
    series_uids: Sequence[str],
    sop_uids: Sequence[str],
    listing: Sequence[InstanceRef] | None,
    present: set[str],
    patient_id: str = "",
) -> list[Request]:
    """The identifiers to send: whole study/series when nothing is present, else the gaps."""
    if listing is None:  # the peer could not list instances: ask for everything
        if sop_uids:
            return [
                Request(
                    _identifier("IMAGE", study_uid, series_uids, sop_uids, patient_id),
                    tuple(sop_uids),
                )
            ]
        level = "SERIES" if series_uids else "STUDY"
        return [Request(_identifier(level, study_uid, series_uids, (), patient_id), ())]
    missing = [r for r in listing if r.sop_instance_uid not in present]
    if not missing:
        return []
    if not present and not sop_uids:
        level = "SERIES" if series_uids else "STUDY"
        return [
            Request(
                _identifier(level, study_uid, series_uids, (), patient_id),
                tuple(r.sop_instance_uid for r in missing),
            )
        ]
    requests = []
    by_series: dict[str, list[str]] = {}
    for ref in missing:
        by_series.setdefault(ref.series_uid, []).append(ref.sop_instance_uid)
    for series_uid, uids in by_series.items():
        for i in range(0, len(uids), _UID_LIST_CHUNK):
            chunk = uids[i : i + _UID_LIST_CHUNK]
            requests.append(
                Request(
                    _identifier("IMAGE", study_uid, [series_uid], chunk, patient_id), tuple(chunk)
                )
            )
    return requests


_SUB_OPERATIONS_FAILED = frozenset({0xA702, 0xB000})


class SubOperationsFailedError(Exception):
    """Internal: a C-GET round ended with failed sub-operations (another round may follow)."""

    def __init__(self, status: int | None) -> None:
        super().__init__(f"sub-operations failed (status {status})")
        self.status = status


def _run(
    assoc: Any,
    responses: Any,
    model: Any,
    *,
    server: DimseServer,
    operation: str,
    uid: str,
    receiver: Receiver,
    cancel: CancelToken | None,
    retry: bool = False,
) -> None:
    """Consume C-GET/C-MOVE responses; record failed sub-operations; map the final status."""
    cancelled = False
    for status, identifier in responses:
        if cancel is not None and cancel.cancelled and not cancelled and assoc.is_established:
            assoc.send_c_cancel(1, query_model=model)
            cancelled = True
        code = int(status.Status) if "Status" in status else None
        if code is not None and status_category(code, operation) is StatusCategory.PENDING:
            _announce(receiver, status)
            continue
        failed_uids = identifier.get("FailedSOPInstanceUIDList", "") if identifier else ""
        uids = [failed_uids] if isinstance(failed_uids, str) else list(failed_uids)
        _finish(
            status,
            uids,
            cancelled,
            server=server,
            operation=operation,
            uid=uid,
            receiver=receiver,
            retry=retry,
        )


def _announce(receiver: Receiver, status: Any) -> None:
    """The total for progress from a pending response's counts, when no listing gave it."""
    if receiver.expected is None and "NumberOfRemainingSuboperations" in status:
        keys = ("Remaining", "Completed", "Failed", "Warning")
        receiver.expected = sum(int(status.get(f"NumberOf{k}Suboperations") or 0) for k in keys)


def _finish(
    status: Any,
    failed: Sequence[str],
    cancelled: bool,
    *,
    server: DimseServer,
    operation: str,
    uid: str,
    receiver: Receiver,
    retry: bool = False,
) -> None:
    """Map a final C-GET/C-MOVE response: failed sub-operations, cancel, status.

    With ``retry``, failed sub-operations (0xA702, 0xB000 or a failed UID list)
    raise :class:`SubOperationsFailedError` instead of being recorded.
    """
    code = int(status.Status) if status is not None and "Status" in status else None
    failed = [str(sop) for sop in failed if sop]  # pynetdicom gives [""] for an empty list
    if retry and not cancelled and (failed or code in _SUB_OPERATIONS_FAILED):
        raise SubOperationsFailedError(code)
    for sop in failed:
        receiver.add_failure(sop, f"{server.name} reported the {operation} sub-operation failed")
    if cancelled:
        raise CancelledError(f"{operation} from {server.name} for {uid} cancelled")
    outcome = check_status(
        status, server=server.name, operation=operation, uid=uid, timeout=server.timeout
    )
    if outcome.warning:
        receiver.add_warning(uid, outcome.warning)


def _fast_gets(
    assoc: Any,
    requests: Sequence[Request],
    model: Any,
    server: DimseServer,
    receiver: Receiver,
    uid: str,
    cancel: CancelToken | None,
    retry: bool,
) -> None:
    for request in requests:
        try:
            result = fast_get(
                assoc,
                request.identifier,
                model,
                receiver,
                server=server.name,
                source_ae=server.ae_title,
                cancel=cancel,
                timeout=server.timeout,
            )
        except OSError as exc:
            raise socket_error(
                exc, server=server.name, operation="C-GET", uid=uid, timeout=server.timeout
            ) from None
        _finish(
            result.status,
            result.failed,
            result.cancelled,
            server=server,
            operation="C-GET",
            uid=uid,
            receiver=receiver,
            retry=retry,
        )


def retrieve_get(
    server: DimseServer,
    requests: Sequence[Request],
    classes: Sequence[str],
    receiver: Receiver,
    root: QueryRoot,
    uid: str,
    cancel: CancelToken | None,
    storage: Sequence[PresentationContext] | None = None,
    *,
    retry: bool = False,
) -> None:
    """Run C-GET requests on one association; stores come back on the same association.

    ``storage`` are the storage contexts to propose (:func:`get_storage_contexts`);
    without it, one context with every receive syntax for each of ``classes``.
    ``retry``: see :func:`_finish`.
    """
    model = model_uid(root, "C-GET", _level_of(requests))
    contexts = [build_context(model), *(storage or receive_contexts(classes))]
    handlers = [(evt.EVT_C_STORE, receiver.handle)]
    with open_association(server, contexts, "C-GET", scp_roles=classes, handlers=handlers) as assoc:
        if fast_get_available(assoc):  # the transport seam (dimse_transport.use_fast)
            _fast_gets(assoc, requests, model, server, receiver, uid, cancel, retry)
            return
        for request in requests:
            responses = assoc.send_c_get(request.identifier, model)
            _run(
                assoc,
                responses,
                model,
                server=server,
                operation="C-GET",
                uid=uid,
                receiver=receiver,
                cancel=cancel,
                retry=retry,
            )


def retrieve_get_rounds(
    server: DimseServer,
    requests: Sequence[Request],
    rounds: Sequence[Callable[[], list[PresentationContext]]],
    replan: Callable[[set[str]], list[Request]],
    receiver: Receiver,
    root: QueryRoot,
    uid: str,
    cancel: CancelToken | None,
) -> None:
    """C-GET ``requests``; what failed to arrive is asked again with the next round's contexts.

    Each round is one association proposing the contexts one of ``rounds`` builds (see
    :func:`get_context_rounds`); after a round with failed sub-operations,
    ``replan(received)`` names what is still missing (empty: done). The last
    round records failures and maps the status as usual.
    """
    for number, build in enumerate(rounds):
        final = number == len(rounds) - 1
        storage = build()
        classes = list(dict.fromkeys(str(cx.abstract_syntax) for cx in storage))
        try:
            retrieve_get(
                server, requests, classes, receiver, root, uid, cancel, storage, retry=not final
            )
            return
        except SubOperationsFailedError:
            receiver.wait()
            got = receiver.report()
            requests = replan(set(got.succeeded) | set(got.skipped))
            if not requests:
                return


def retrieve_move(
    server: DimseServer,
    local: LocalNodeConfig,
    requests: Sequence[Request],
    into: Database,
    receiver: Receiver,
    root: QueryRoot,
    uid: str,
    cancel: CancelToken | None,
    listener: StorageListener | None = None,
) -> bool:
    """Run C-MOVE requests; return True if ``receiver`` saw the stores.

    A listener feeding ``receiver`` is started on ``local`` for the duration of the
    move, unless a running ``listener`` is given or the port is already taken (a
    running ``dicomstation listen``). Then another receiver indexes the stores and
    False is returned: the caller checks arrival in the database.
    """
    model = model_uid(root, "C-MOVE", _level_of(requests))
    destination = server.move_destination or local.ae_title
    own: StorageListener | None = None
    if listener is None:
        own = StorageListener.from_config(
            into, local, timeout=server.timeout, receiver=receiver, operation="C-MOVE"
        )
        try:
            own.start()
        except ConfigError:
            own = None  # the port is taken: a running listener receives for us
    try:
        with open_association(server, [build_context(model)], "C-MOVE") as assoc:
            for request in requests:
                responses = assoc.send_c_move(request.identifier, destination, model)
                _run(
                    assoc,
                    responses,
                    model,
                    server=server,
                    operation="C-MOVE",
                    uid=uid,
                    receiver=receiver,
                    cancel=cancel,
                )
    finally:
        if own is not None:
            own.stop()
    return own is not None


def wait_external(
    into: Database, expected: Sequence[str], timeout: float = _EXTERNAL_WAIT
) -> set[str]:
    """Wait until an external listener has indexed ``expected``; return those present."""
    deadline = time.monotonic() + timeout
    present = into.has_instances(expected)
    while len(present) < len(set(expected)) and time.monotonic() < deadline:
        time.sleep(0.2)
        present = into.has_instances(expected)
    return present


def _level_of(requests: Sequence[Request]) -> Any:
    from dicomstation.models import Level

    return Level.parse(str(requests[0].identifier.QueryRetrieveLevel)) if requests else Level.STUDY
