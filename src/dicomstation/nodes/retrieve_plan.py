"""Planning a retrieve: which series or instances to request, which to skip.

Protocol-neutral (it only needs the node's ``iter_find``), so it plans WADO-RS
requests here and could plan C-GET/C-MOVE requests the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from dicomstation.errors import RemoteStatusError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef
from dicomstation.nodes.wado import Target
from dicomstation.transfer import TransferTracker

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.nodes.base import Ref

__all__ = ["RetrievePlanner"]

_UIDS_PER_QUERY = 50


class RetrievePlanner:
    """Turn (study, series, instances) into :class:`Target` s, skipping what is local.

    A series with nothing local is fetched whole without listing its instances
    first (one cheap series-level query gives the counts); other series are
    listed and only their missing instances are requested.
    """

    def __init__(self, server: str, find: Callable[[Query], Iterator[Ref]]) -> None:
        self.server = server
        self.find = find

    def _not_found(self, what: str, uid: str) -> RemoteStatusError:
        return RemoteStatusError(
            f"{what} not found on the server (empty QIDO-RS listing)",
            server=self.server,
            operation="WADO-RS",
            status=404,
            uid=uid,
        )

    def listing(
        self, study_uid: str, series_uids: Sequence[str], sop_uids: Sequence[str]
    ) -> dict[str, list[str]]:
        """SOP Instance UIDs on the server, by series (instance-level queries)."""
        base = {"SeriesInstanceUID": "\\".join(series_uids)} if len(series_uids) > 1 else {}
        groups = [
            sop_uids[i : i + _UIDS_PER_QUERY] for i in range(0, len(sop_uids), _UIDS_PER_QUERY)
        ] or [()]
        single = series_uids[0] if len(series_uids) == 1 else None
        found: dict[str, list[str]] = {}
        for group in groups:
            filters = dict(base, **({"SOPInstanceUID": "\\".join(group)} if group else {}))
            for ref in self.find(
                Query(Level.IMAGE, filters, study_uid=study_uid, series_uid=single)
            ):
                if isinstance(ref, InstanceRef):
                    series = ref.series_uid or single or ""
                    found.setdefault(series, []).append(ref.sop_instance_uid)
        if not found or "" in found:
            what = "instances" if sop_uids else "series" if series_uids else "study"
            raise self._not_found(what, (list(sop_uids) or list(series_uids) or [study_uid])[0])
        return found

    def series_instances(self, study_uid: str, series_uid: str) -> tuple[str, ...]:
        """All SOP Instance UIDs of one series (used to resume a series)."""
        return tuple(self.listing(study_uid, [series_uid], ()).get(series_uid, ()))

    def plan(
        self,
        study_uid: str,
        series_uids: Sequence[str],
        sop_uids: Sequence[str],
        into: Database,
        tracker: TransferTracker,
    ) -> list[Target]:
        """Targets to fetch; instances already in ``into`` are recorded as skipped."""
        if sop_uids:
            listing = self.listing(study_uid, series_uids, sop_uids)
            listed = {uid for uids in listing.values() for uid in uids}
            self._absent(tracker, [u for u in sop_uids if u not in listed], "instance")
            return self._instance_targets(study_uid, listing, into, tracker)
        filters = {"SeriesInstanceUID": "\\".join(series_uids)} if series_uids else {}
        found = [
            r
            for r in self.find(Query(Level.SERIES, filters, study_uid=study_uid))
            if isinstance(r, SeriesRef)
        ]
        if not found:
            raise self._not_found(
                "series" if series_uids else "study", (list(series_uids) or [study_uid])[0]
            )
        known = {r.series_uid for r in found}
        self._absent(tracker, [u for u in series_uids if u not in known], "series")
        fresh = [r for r in found if not _has_series(into, r.series_uid)]
        partial = [r.series_uid for r in found if r not in fresh]
        listing = self.listing(study_uid, partial, ()) if partial else {}
        tracker.add_total(sum(r.num_instances or 0 for r in fresh))
        targets = [Target(study_uid, r.series_uid) for r in fresh]
        return targets + self._instance_targets(study_uid, listing, into, tracker, whole=True)

    def _absent(self, tracker: TransferTracker, uids: list[str], what: str) -> None:
        """Record requested UIDs the server does not have (the others are still fetched)."""
        tracker.add_total(len(uids))
        for uid in uids:
            tracker.fail(uid, f"WADO-RS on {self.server} for {uid}: {what} not found on the server")

    @staticmethod
    def _instance_targets(
        study_uid: str,
        listing: dict[str, list[str]],
        into: Database,
        tracker: TransferTracker,
        *,
        whole: bool = False,
    ) -> list[Target]:
        present = into.has_instances(uid for uids in listing.values() for uid in uids)
        tracker.add_total(sum(len(u) for u in listing.values()))
        targets: list[Target] = []
        for series, uids in listing.items():
            missing = tuple(u for u in uids if u not in present)
            tracker.skip([u for u in uids if u in present], "already in the local database")
            if whole and missing and len(missing) == len(uids):
                targets.append(Target(study_uid, series, None, missing))
            else:
                targets += [Target(study_uid, series, sop, (sop,)) for sop in missing]
        return targets


def _has_series(into: Database, series_uid: str) -> bool:
    """True if the database holds at least one instance of the series."""
    query = Query(Level.IMAGE, series_uid=series_uid, limit=1)
    return next(iter(into.iter_find(query)), None) is not None
