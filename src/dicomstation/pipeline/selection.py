"""Series selection rules (like MONAI Deploy's series selector), per step.

A :class:`SeriesSelector` keeps the series of a work item that match every
rule given: modality, a SeriesDescription regular expression, ImageType values,
a minimum slice count, and conditions on any other attribute named by its DICOM
keyword (:mod:`.attribute_rules`). On a remote server the query answer is checked
(modality, description, number of instances), and one instance of the series, asked
for the attributes of the conditions (an attribute the server's answer lacks passes
there); in the local database the cached headers are read too (ImageType, frames,
attributes: a missing attribute does not match).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicomstation.dicomjson import first_value, values
from dicomstation.errors import ConfigError
from dicomstation.models import InstanceRef, Level, Query, SeriesRef
from dicomstation.pipeline.attribute_rules import AttributeRule, is_keyword, search_pattern
from dicomstation.pipeline.table_check import check_value

if TYPE_CHECKING:
    from dicomstation.database import Database
    from dicomstation.nodes import DicomNode
    from dicomstation.pipeline.model import WorkItem

__all__ = ["SeriesSelector"]


@dataclass(frozen=True)
class SeriesSelector:
    """Which series of a study a step works on (every given rule must match).

    Parameters
    ----------
    modality : tuple of str
        Accepted modalities (``CT``, ``MR``...); empty: any.
    description : str
        Regular expression searched (case-insensitive) in SeriesDescription.
    image_type : tuple of str
        Values that must all appear in ImageType (``ORIGINAL``, ``AXIAL``...).
    min_slices : int
        Minimum number of slices (instances, or frames of a multi-frame image).
    attributes : tuple of AttributeRule
        Conditions on other attributes (``BodyPartExamined``, ``SliceThickness``...).
    """

    modality: tuple[str, ...] = ()
    description: str = ""
    image_type: tuple[str, ...] = ()
    min_slices: int = 0
    attributes: tuple[AttributeRule, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        pattern = search_pattern(self.description, "series description pattern")
        object.__setattr__(self, "_pattern", pattern)
        object.__setattr__(self, "modality", tuple(m.upper() for m in self.modality))
        object.__setattr__(self, "image_type", tuple(t.upper() for t in self.image_type))

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> SeriesSelector:
        """From a pipeline file's ``select`` table (ConfigError on unknown keys)."""
        known = {"modality", "description", "image_type", "min_slices"}
        unknown = {k for k in set(table) - known if not is_keyword(k)}
        if unknown:
            raise ConfigError(
                f"unknown series selection rule(s) {sorted(unknown)}; known: {sorted(known)} "
                "or a DICOM keyword (BodyPartExamined...)"
            )
        check_value(table.get("min_slices", 0), int, "select.min_slices")
        return cls(
            modality=_strings(table.get("modality", ())),
            description=str(table.get("description", "")),
            image_type=_strings(table.get("image_type", ())),
            min_slices=int(table.get("min_slices", 0)),
            attributes=tuple(AttributeRule.parse(k, v) for k, v in table.items() if k not in known),
        )

    def to_dict(self) -> dict[str, Any]:
        """The rules as a pipeline-file table (only the ones given)."""
        table: dict[str, Any] = {
            "modality": list(self.modality),
            "description": self.description,
            "image_type": list(self.image_type),
            "min_slices": self.min_slices,
        }
        rules = {rule.keyword: rule.to_value() for rule in self.attributes}
        return {k: v for k, v in table.items() if v} | rules

    @property
    def empty(self) -> bool:
        """True when there is no rule (every series matches)."""
        return not self.to_dict()

    def matches_ref(self, ref: SeriesRef) -> bool:
        """Check what a series query answer tells (unknown values pass)."""
        if self.modality and ref.modality and ref.modality.upper() not in self.modality:
            return False
        if self._pattern is not None and not self._pattern.search(ref.description or ""):
            return False
        count = ref.num_instances
        return count is None or count >= self.min_slices or not self.min_slices

    def matches_headers(self, headers: Sequence[Mapping[str, Any]]) -> bool:
        """Check every rule on a series' instance headers (DICOM JSON)."""
        if not headers:
            return False
        first = headers[0]
        if self.modality and first_value(first, "Modality").upper() not in self.modality:
            return False
        if self._pattern is not None and not self._pattern.search(
            first_value(first, "SeriesDescription")
        ):
            return False
        kinds = {str(v).upper() for v in values(first, "ImageType")}
        if not set(self.image_type) <= kinds:
            return False
        if not all(rule.matches(first) for rule in self.attributes):
            return False
        return _slices(headers) >= self.min_slices

    def remote(self, node: DicomNode, item: WorkItem) -> tuple[str, ...]:
        """Series of ``item`` on a server that may match (checked on the query answer)."""
        refs = node.find(Query(Level.SERIES, study_uid=item.study_uid))
        wanted = set(item.series_uids)
        return tuple(
            r.series_uid
            for r in refs
            if isinstance(r, SeriesRef)
            and (not wanted or r.series_uid in wanted)
            and self.matches_ref(r)
            and self._remote_attributes(node, item.study_uid, r.series_uid)
        )

    def _remote_attributes(self, node: DicomNode, study_uid: str, series_uid: str) -> bool:
        """Attribute conditions on one instance of the series as the server lists it.

        One instance query (QIDO-RS ``includefield``, or C-FIND return keys) asking for
        the attributes of the conditions; one the answer lacks passes.
        """
        if not self.attributes:
            return True
        keywords = tuple(dict.fromkeys(rule.keyword for rule in self.attributes))
        found = node.find(
            Query(
                Level.IMAGE,
                study_uid=study_uid,
                series_uid=series_uid,
                include_fields=keywords,
                limit=1,
            )
        )
        first = next((ref.json for ref in found if isinstance(ref, InstanceRef)), None)
        if first is None:
            return False  # no instance: nothing to fetch
        return all(rule.matches(first) is not False for rule in self.attributes)

    def local(self, db: Database, item: WorkItem) -> tuple[str, ...]:
        """Series of ``item`` in the local database that match every rule, by series number."""
        refs = [
            r
            for r in db.find(Query(Level.SERIES, study_uid=item.study_uid))
            if isinstance(r, SeriesRef)
        ]
        refs.sort(key=lambda r: (r.series_number is None, r.series_number or 0, r.series_uid))
        wanted = set(item.series_uids)
        return tuple(
            r.series_uid
            for r in refs
            if (not wanted or r.series_uid in wanted)
            and self.matches_ref(r)
            and (not self._needs_headers(r) or self.matches_headers(db.headers_of(r.series_uid)))
        )

    def _needs_headers(self, ref: SeriesRef) -> bool:
        """Whether the index row leaves a rule undecided (headers cost a file read each)."""
        if self.image_type or self.attributes or ref.num_instances == 0:
            return True
        if (self.modality and not ref.modality) or (self._pattern and ref.description is None):
            return True
        count = ref.num_instances
        return bool(self.min_slices) and (count is None or count < self.min_slices)


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _slices(headers: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for header in headers:
        frames = first_value(header, "NumberOfFrames")
        total += int(frames) if frames.isdigit() else 1
    return total
