"""What a C-GET/C-MOVE brings: the instance listing (C-FIND at IMAGE level), or none.

The listing tells which instances the database already has (they are skipped),
which SOP classes and transfer syntaxes to propose, and what to ask again when a
C-GET round fails. It costs one C-FIND response per instance (about as long as
getscu takes to receive the instance itself), so a C-GET of whole series or a
whole study into a database that holds nothing of them does without it
(:func:`needs_listing`): everything is asked for at once, on contexts chosen by
modality, and the peer's C-GET responses count what is sent. Only if that C-GET
reports failed sub-operations is the listing made, and the missing instances asked
again round by round as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from dicomstation.config import DimseServer
from dicomstation.errors import NotFoundError, ProtocolError, RemoteStatusError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, TransferReport
from dicomstation.nodes.base import CancelToken
from dicomstation.nodes.dimse_contexts import STORED_KEYS, listing_json, modality_contexts
from dicomstation.nodes.dimse_query import QueryRoot
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.dimse_retrieve import (
    RetrieveMethod,
    SubOperationsFailedError,
    plan_request,
    retrieve_get,
)

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["get_unlisted", "list_images", "listing", "merge_report", "needs_listing"]

Datasets = Callable[[Query, Iterable[str]], Iterator[Dataset]]


def needs_listing(
    method: RetrieveMethod,
    root: QueryRoot,
    into: Database,
    study_uid: str,
    series_uids: Sequence[str],
    sop_uids: Sequence[str],
) -> bool:
    """False when a C-GET can ask for everything at once with no listing first.

    That is a C-GET (C-MOVE to another listener needs the list to check arrival) in
    the Study Root model (Patient Root needs the listing's Patient ID) of a study or
    of series, none of which the database holds any instance of.
    """
    if method is not RetrieveMethod.GET or root is not QueryRoot.STUDY or sop_uids:
        return True
    try:
        if not series_uids:
            into.study_files(study_uid)
            return True
        for uid in series_uids:
            into.series_files(uid)
            return True
    except NotFoundError:
        pass
    return False


def list_images(
    datasets: Datasets,
    root: QueryRoot,
    study_uid: str,
    series: Sequence[str],
    sops: Sequence[str],
) -> list[InstanceRef]:
    """The IMAGE-level C-FIND listing of ``series`` (or the study), ``sops`` only if given."""
    filters = {}
    if series:
        filters["SeriesInstanceUID"] = "\\".join(series)
    if sops:
        filters["SOPInstanceUID"] = "\\".join(sops)
    query = Query(Level.IMAGE, filters, study_uid=study_uid)
    extra: tuple[str, ...] = ("PatientID",) if root is QueryRoot.PATIENT else ()
    # what is stored, for the C-GET's storage contexts (peers ignore keys they lack)
    extra += STORED_KEYS
    # read the few attributes directly: JSON for every listed instance is costly
    return [
        InstanceRef(
            sop_instance_uid=str(found.get("SOPInstanceUID", "") or ""),
            sop_class_uid=str(found.get("SOPClassUID", "") or ""),
            series_uid=str(found.get("SeriesInstanceUID", "") or ""),
            study_uid=str(found.get("StudyInstanceUID", "") or study_uid),
            json=listing_json(found),
        )
        for found in datasets(query, extra)
    ]


def listing(
    datasets: Datasets,
    find_series: Callable[[str], Iterable[object]],
    root: QueryRoot,
    study_uid: str,
    series_uids: Sequence[str],
    sop_uids: Sequence[str],
) -> list[InstanceRef] | None:
    """The instances to retrieve, or None if the peer cannot list them.

    One IMAGE-level C-FIND first (fine for Orthanc and most PACS); strictly
    hierarchical SCPs (dcmqrscp) need one series at a time, so that is the
    fallback (``find_series(study_uid)`` yields the study's series references).
    """
    try:
        found = list_images(datasets, root, study_uid, series_uids, sop_uids)
        if found or (series_uids and len(series_uids) == 1):
            return found
    except (RemoteStatusError, ProtocolError):
        pass
    try:
        series = list(series_uids) or [
            ref.series_uid for ref in find_series(study_uid) if isinstance(ref, SeriesRef)
        ]
        return [
            ref for uid in series for ref in list_images(datasets, root, study_uid, [uid], sop_uids)
        ]
    except (RemoteStatusError, ProtocolError):
        return None  # cannot list instances: retrieve everything, skip on arrival


def merge_report(
    got: TransferReport,
    present: set[str],
    expected: Sequence[str],
    succeeded: Sequence[str],
    server: str,
    seconds: float,
) -> TransferReport:
    """The retrieve's report: ``expected`` instances neither received nor refused failed."""
    done = set(succeeded) | set(got.skipped) | set(got.failed)
    failed = dict(got.failed)
    for uid in expected:
        if uid not in done:
            failed[uid] = f"not received from {server}"
    return TransferReport(
        got.operation,
        tuple(succeeded),
        tuple(sorted(present)) + got.skipped,
        failed,
        got.warnings,
        got.bytes_transferred,
        seconds,
    )


def get_unlisted(
    server: DimseServer,
    study_uid: str,
    series_uids: Sequence[str],
    modalities: Sequence[str],
    receiver: Receiver,
    root: QueryRoot,
    cancel: CancelToken | None,
) -> bool:
    """C-GET the series (or the study) with no listing; False if sub-operations failed.

    The storage contexts are those of ``modalities`` (:func:`modality_contexts`).
    False also when the peer refused the C-GET with nothing sent. After False the
    caller lists the instances and asks for what is missing.
    """
    requests = plan_request(study_uid, series_uids, (), None, set())
    storage = modality_contexts(modalities)
    classes = list(dict.fromkeys(str(cx.abstract_syntax) for cx in storage))
    try:
        retrieve_get(
            server, requests, classes, receiver, root, study_uid, cancel, storage, retry=True
        )
    except SubOperationsFailedError:
        return False
    except RemoteStatusError:  # some peers refuse a C-GET of what they lack: list first
        receiver.wait()
        got = receiver.report()
        if got.succeeded or got.skipped:
            raise
        return False
    return True
