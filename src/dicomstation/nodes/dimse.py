"""DIMSE node (pynetdicom): C-ECHO, C-FIND, C-GET/C-MOVE and C-STORE behind :class:`DicomNode`.

The CLI, web UI and transfer code use it exactly like the DICOMweb node:

>>> node = open_node(DimseServer("pacs", "ORTHANC", "127.0.0.1", 4242))
>>> studies = node.find(Query(Level.STUDY, {"PatientName": "DOE^*"}))
>>> node.retrieve(studies[0].study_uid, into=db)

Module map: ``dimse_assoc`` (associations), ``dimse_query`` (C-FIND),
``dimse_retrieve`` (C-GET/C-MOVE), ``dimse_listing`` (what a retrieve lists
first, if anything), ``dimse_receive`` (raw storage into the
database), ``dimse_store`` (C-STORE SCU), ``dimse_errors`` (the one error mapping),
``listener`` (storage SCP). Fast paths that read/write the association's PDUs
themselves where pynetdicom's per-PDU cost dominated: ``dimse_pdu`` (framing,
socket take-over), ``dimse_fastsend`` (C-STORE), ``dimse_fastget`` (C-GET),
``dimse_fastscp`` (listener).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import build_context

from dicomstation.config import DimseServer, LocalNodeConfig
from dicomstation.errors import CancelledError, NotFoundError, ProtocolError, RemoteStatusError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef, TransferReport
from dicomstation.nodes.base import CancelToken, ClosingNode, ProgressCallback, Ref
from dicomstation.nodes.dimse_assoc import open_association
from dicomstation.nodes.dimse_contexts import get_context_rounds, listing_names_kinds
from dicomstation.nodes.dimse_errors import check_status
from dicomstation.nodes.dimse_listing import get_unlisted, listing, merge_report, needs_listing
from dicomstation.nodes.dimse_matches import UniqueMatches
from dicomstation.nodes.dimse_query import (
    METADATA_KEYS,
    VERIFICATION,
    QueryRoot,
    build_identifier,
    iter_identifiers,
    model_uid,
    to_json,
    to_ref,
)
from dicomstation.nodes.dimse_receive import Receiver
from dicomstation.nodes.dimse_retrieve import (
    Request,
    RetrieveMethod,
    plan_request,
    retrieve_get_rounds,
    retrieve_move,
    wait_external,
)
from dicomstation.nodes.dimse_store import send_files
from dicomstation.nodes.listener import StorageListener

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["DimseNode", "QueryRoot", "RetrieveMethod"]


class DimseNode(ClosingNode):
    """A DIMSE peer (PACS, Orthanc, dcmqrscp...) as a :class:`DicomNode`.

    Parameters
    ----------
    server : DimseServer
        Called AE title, host, port, our calling AE title, timeout, and the
        C-MOVE destination (when set, retrieves use C-MOVE).
    local : LocalNodeConfig
        Our listener's AE title/host/port for C-MOVE.
    root : QueryRoot or str
        Study Root (default) or Patient Root information model.
    method : RetrieveMethod or str, optional
        Force C-GET or C-MOVE (default: C-MOVE if ``server.move_destination``
        is set, else C-GET).
    listener : StorageListener, optional
        A running listener of this process to receive C-MOVE stores.
    associations : int
        How many associations a C-STORE uses at once (default 1; more is faster
        where the receiver handles associations in parallel).
    """

    def __init__(
        self,
        server: DimseServer,
        *,
        local: LocalNodeConfig | None = None,
        root: QueryRoot | str = QueryRoot.STUDY,
        method: RetrieveMethod | str | None = None,
        listener: StorageListener | None = None,
        associations: int = 1,
    ) -> None:
        self.server = server
        self.associations = associations
        self.name = server.name
        self.local = local or LocalNodeConfig()
        self.root = QueryRoot(root)
        if method is None:
            method = RetrieveMethod.MOVE if server.move_destination else RetrieveMethod.GET
        self.method = RetrieveMethod(method)
        self.listener = listener

    @classmethod
    def from_config(cls, server: DimseServer, *, local: LocalNodeConfig | None = None) -> DimseNode:
        """The node for a configured DIMSE server."""
        return cls(server, local=local)

    def __repr__(self) -> str:
        s = self.server
        return f"DimseNode({s.name!r}, {s.ae_title}@{s.host}:{s.port}, {self.method.value})"

    # -- C-ECHO ------------------------------------------------------------------------
    def echo(self) -> float:
        """C-ECHO; return the seconds taken (association included).

        Raises
        ------
        ConnectionFailedError, AssociationError, AuthenticationError, RemoteStatusError
        """
        started = time.perf_counter()
        with open_association(self.server, [build_context(VERIFICATION)], "C-ECHO") as assoc:
            status = assoc.send_c_echo()
            check_status(status, server=self.name, operation="C-ECHO", timeout=self.server.timeout)
        return time.perf_counter() - started

    # -- C-FIND ------------------------------------------------------------------------
    def _identifiers(self, query: Query, extra: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        for found in self._datasets(query, extra):
            yield to_json(found, server=self.name)

    def _datasets(self, query: Query, extra: Iterable[str] = ()) -> Iterator[Dataset]:
        level = Level.parse(query.level)
        identifier = build_identifier(query, extra)
        model = model_uid(self.root, "C-FIND", level)
        uid = query.series_uid or query.study_uid
        unique = UniqueMatches(level)  # peers answering once per instance (qrscp)
        with open_association(self.server, [build_context(model)], "C-FIND") as assoc:
            skipped = yielded = 0
            for found in unique.filter(
                iter_identifiers(
                    assoc, identifier, model, server=self.name, uid=uid, timeout=self.server.timeout
                )
            ):
                if skipped < query.offset:
                    skipped += 1
                    continue
                yield found
                yielded += 1
                if query.limit is not None and yielded >= query.limit:
                    break

    def iter_find(self, query: Query) -> Iterator[Ref]:
        """Yield matches as C-FIND responses arrive (patient/study/series/instance level).

        ``limit``/``offset`` are applied here (DIMSE has no paging); stopping early
        sends C-CANCEL. A peer answering once per instance yields each entity once
        (the first answer; :meth:`find` merges the attributes of all of them).
        """
        level = Level.parse(query.level)
        for obj in self._identifiers(query):
            yield to_ref(level, obj)

    def find(self, query: Query) -> list[Ref]:
        """All matches of :meth:`iter_find`, duplicates' attributes merged (dimse_matches)."""
        level = Level.parse(query.level)
        found = list(self._datasets(query))  # merged in place until the last response
        return [to_ref(level, to_json(ds, server=self.name)) for ds in found]

    def metadata(self, study_uid: str, series_uid: str | None = None) -> list[Mapping[str, Any]]:
        """Instance headers from a C-FIND at IMAGE level (no files are transferred).

        Only the attributes the peer returns for the requested keys are present
        (a C-FIND cannot ask for "everything").
        """
        query = Query(Level.IMAGE, study_uid=study_uid, series_uid=series_uid)
        found = list(self._datasets(query, METADATA_KEYS))
        return [to_json(ds, server=self.name) for ds in found]

    # -- C-GET / C-MOVE ------------------------------------------------------------------
    def _listing(
        self, study_uid: str, series_uids: Sequence[str], sop_uids: Sequence[str]
    ) -> list[InstanceRef] | None:
        """The instances to retrieve, or None if the peer cannot list them (dimse_listing)."""

        def find_series(study: str) -> Iterable[object]:
            return self.iter_find(Query(Level.SERIES, study_uid=study))

        return listing(self._datasets, find_series, self.root, study_uid, series_uids, sop_uids)

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
        """Retrieve a study, some of its series, or some instances into ``into``.

        Uses C-GET, or C-MOVE to our storage listener (see ``method``). Instances
        ``into`` already has are skipped without being transferred: a C-GET of
        series or a study ``into`` holds nothing of asks for all of it with no
        instance listing first (:mod:`dimse_listing`).

        Returns
        -------
        TransferReport
            ``succeeded``/``skipped``/``failed`` are SOP Instance UIDs.

        Raises
        ------
        ConnectionFailedError, AssociationError, AuthenticationError, RemoteStatusError
            On association failures, timeouts and Failure statuses.
        CancelledError
            When ``cancel`` is set; complete instances received so far are kept.
        """
        started = time.perf_counter()
        receiver = Receiver(into, operation=self.method.value, progress=progress)
        try:
            if cancel is not None and cancel.cancelled:
                raise CancelledError(f"{self.method.value} from {self.name} cancelled")
            if not needs_listing(self.method, self.root, into, study_uid, series_uids, sop_uids):
                modalities = self._modalities(study_uid, series_uids)
                args = (self.server, study_uid, series_uids, modalities, receiver, self.root)
                if get_unlisted(*args, cancel):
                    got = receiver.finish()
                    if got.succeeded or got.skipped or got.failed:
                        seconds = time.perf_counter() - started
                        return merge_report(got, set(), (), got.succeeded, self.name, seconds)
                receiver.wait()  # failed sub-operations or nothing sent: list, ask the rest
            return self._retrieve_listed(
                study_uid, series_uids, sop_uids, into, receiver, cancel, started
            )
        finally:
            receiver.finish()

    def _retrieve_listed(
        self,
        study_uid: str,
        series_uids: Sequence[str],
        sop_uids: Sequence[str],
        into: Database,
        receiver: Receiver,
        cancel: CancelToken | None,
        started: float,
    ) -> TransferReport:
        """Retrieve what the C-FIND listing names and ``into`` lacks (see :meth:`retrieve`)."""
        listing = self._listing(study_uid, series_uids, sop_uids)
        if listing == []:
            what = ", ".join([*series_uids, *sop_uids]) or study_uid
            raise NotFoundError(f"{self.method.value} from {self.name}: {what} not found")
        wanted = [r.sop_instance_uid for r in listing] if listing is not None else list(sop_uids)
        present = into.has_instances(wanted)
        patient_id = ""
        if self.root is QueryRoot.PATIENT and listing:
            patient_id = str(listing[0].json.get("00100020", {}).get("Value", [""])[0])
        requests = plan_request(study_uid, series_uids, sop_uids, listing, present, patient_id)
        expected = [uid for r in requests for uid in r.expected]
        receiver.expected = len(expected) or None

        def replan(got: set[str]) -> list[Request]:  # what a C-GET round left missing
            have = present | got
            return plan_request(study_uid, series_uids, sop_uids, listing, have, patient_id)

        external = self._transfer(requests, listing, into, receiver, study_uid, cancel, replan)
        got = receiver.finish()
        before = present - {*got.succeeded, *got.skipped}  # not received by the first C-GET
        succeeded: Sequence[str] = got.succeeded
        if external:  # stores went to another listener: look in the database
            succeeded = sorted(wait_external(into, expected, self.server.timeout))
        seconds = time.perf_counter() - started
        return merge_report(got, before, expected, succeeded, self.name, seconds)

    def _transfer(
        self,
        requests: Sequence[Request],
        listing: Sequence[InstanceRef] | None,
        into: Database,
        receiver: Receiver,
        study_uid: str,
        cancel: CancelToken | None,
        replan: Callable[[set[str]], list[Request]],
    ) -> bool:
        """Run the requests; True when another listener received (check the database)."""
        if not requests:
            return False
        if self.method is RetrieveMethod.GET:
            modalities = () if listing_names_kinds(listing) else self._modalities(study_uid)
            rounds = get_context_rounds(listing, modalities)
            retrieve_get_rounds(
                self.server, requests, rounds, replan, receiver, self.root, study_uid, cancel
            )
            return False
        return not retrieve_move(
            self.server,
            self.local,
            requests,
            into,
            receiver,
            self.root,
            study_uid,
            cancel,
            self.listener,
        )

    def _modalities(self, study_uid: str, series_uids: Sequence[str] = ()) -> list[str]:
        """The modalities of the study, or of ``series_uids`` in it (a SERIES-level C-FIND)."""
        try:
            series = self.find(Query(Level.SERIES, study_uid=study_uid))
        except (RemoteStatusError, ProtocolError):
            return []
        wanted = set(series_uids)
        return [
            r.modality
            for r in series
            if isinstance(r, SeriesRef) and r.modality and (not wanted or r.series_uid in wanted)
        ]

    # -- C-STORE -------------------------------------------------------------------------
    def store(
        self,
        files: Iterable[Path],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        associations: int | None = None,
    ) -> TransferReport:
        """C-STORE files (one association for many; streamed from disk as encoded).

        ``associations`` (default: the node's :attr:`associations`) sends that many
        runs of the files on as many associations at once.

        Returns
        -------
        TransferReport
            ``succeeded``/``failed`` by SOP Instance UID (unreadable files by path).
        """
        return send_files(
            self.server,
            files,
            progress=progress,
            cancel=cancel,
            associations=self.associations if associations is None else associations,
        )

    def store_uids(
        self,
        db: Database,
        uids: Iterable[str],
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> TransferReport:
        """C-STORE studies, series or instances of the local database by UID."""
        files = [path for uid in uids for path in db.files_of(uid)]
        return self.store(files, progress=progress, cancel=cancel)

    def close(self) -> None:
        """Nothing to release: every operation opens and closes its own association."""
