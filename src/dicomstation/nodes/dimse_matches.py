"""C-FIND matches, one per entity: peers that answer once per instance are de-duplicated.

Some SCPs (pynetdicom's ``qrscp``, some PACS) answer a STUDY- or SERIES-level
C-FIND with one response per *instance*, so a study of 150 images comes back as
150 identical study rows. :class:`UniqueMatches` keeps the first response for each
unique key of the query level (PS3.4 C.2.2.1.1: PatientID, StudyInstanceUID,
SeriesInstanceUID, SOPInstanceUID) and merges later ones into it: attributes the
first one lacked (or left empty) are taken from the later ones, and the
multi-valued study summaries (ModalitiesInStudy, SOPClassesInStudy) become the
union of all. Responses without their unique key are passed through unchanged.

The kept dataset is the same object that was handed out first, so a caller that
collects all matches before reading them (``find``) sees the merged attributes;
a streaming caller sees each entity once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydicom.dataset import Dataset

from dicomstation.models import Level

__all__ = ["UNIQUE_KEYS", "UniqueMatches", "merge_match"]

#: The unique key of each query level (PS3.4 C.6.1.1 / C.6.2.1).
UNIQUE_KEYS: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
#: Multi-valued summaries merged as the union of every response's values.
_UNION_KEYWORDS = frozenset({"ModalitiesInStudy", "SOPClassesInStudy"})


def _values(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def merge_match(kept: Dataset, later: Dataset) -> None:
    """Merge ``later`` into ``kept`` (in place): fill what is missing, unite summaries."""
    for element in later:
        if element.tag not in kept or kept[element.tag].is_empty:
            kept[element.tag] = element
        elif element.keyword in _UNION_KEYWORDS:
            union = list(
                dict.fromkeys([*_values(kept, element.keyword), *_values(later, element.keyword)])
            )
            setattr(kept, element.keyword, union if len(union) > 1 else union[0])


class UniqueMatches:
    """Filter for one C-FIND's responses at ``level`` (see the module docstring).

    Parameters
    ----------
    level : Level
        The query's level, which names the unique key.
    """

    def __init__(self, level: Level) -> None:
        self.keyword = UNIQUE_KEYS[level]
        self._kept: dict[str, Dataset] = {}
        #: How many duplicate responses were merged.
        self.duplicates = 0

    def is_new(self, match: Dataset) -> bool:
        """True for the first response of its entity; a duplicate is merged and False."""
        key = str(match.get(self.keyword, "") or "").strip()
        if not key:
            return True
        kept = self._kept.get(key)
        if kept is None:
            self._kept[key] = match
            return True
        merge_match(kept, match)
        self.duplicates += 1
        return False

    def filter(self, matches: Iterable[Dataset]) -> Iterator[Dataset]:
        """The new matches of ``matches``, in arrival order."""
        return (match for match in matches if self.is_new(match))
