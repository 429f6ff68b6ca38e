"""UIDs in the form users have them: a SEG named by its series or by its instance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.errors import NotFoundError, UsageError
from dicomstation.models import InstanceRef, Level, Query

if TYPE_CHECKING:
    from dicomstation.database import Database

__all__ = ["seg_instance_uid"]


def seg_instance_uid(db: Database, uid: str, option: str = "SEG") -> str:
    """The SOP Instance UID of the SEG named by ``uid``: a SEG series UID or its instance UID.

    ``segment`` prints SEG series UIDs, the database lists series; both forms are
    accepted wherever one SEG is meant.

    Raises
    ------
    UsageError
        When ``uid`` is a series holding several instances (name one of them).
    NotFoundError
        When ``uid`` is neither a series nor an instance of the database.
    """
    found = [r for r in db.find(Query(Level.IMAGE, series_uid=uid)) if isinstance(r, InstanceRef)]
    if len(found) == 1:
        return found[0].sop_instance_uid
    if len(found) > 1:
        raise UsageError(
            f"{option} {uid}: that series holds {len(found)} instances; give the SOP Instance "
            f"UID of one ({found[0].sop_instance_uid}, ...)"
        )
    if db.find(Query(Level.IMAGE, filters={"SOPInstanceUID": uid}, limit=1)):
        return uid
    raise NotFoundError(f"{option} {uid}: no such series or instance in the database")
