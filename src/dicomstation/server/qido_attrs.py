"""Which attributes a QIDO-RS result carries at each level (PS3.18 10.6.3.3).

Two sets per level:

- :data:`HEADER_DEFAULTS`: the attributes of PS3.18 Tables 10.6.3-3 (study), -4 (series)
  and -5 (instance) that the index rows lack; they are copied from one cached header per
  result. Instance results also carry the series ones (the instances' series is not
  fixed by the request unless it is series-scoped, PS3.18 10.6.3.3.3).
- :func:`level_tags`: what ``includefield=all`` returns at study and series level. PS3.18
  10.6.1.2.1 (``all``: every available attribute *of the level queried*; Tables 10.6.3-3
  and -4 add the study's for series searches). pydicom has no level table, so the level
  of an attribute is derived from the standard's IOD tables that highdicom ships (read
  through :func:`dicomstation.export.iod._tables`): the top-level attributes of every
  module that some IOD assigns to the Patient or Study information entity are study
  level; those of Series, Frame of Reference and Equipment modules are series level;
  plus the QIDO table attributes of the level (Timezone Offset From UTC is a SOP Common
  attribute in the IOD tables, but PS3.18 lists it at study and series level). Instance
  searches with ``all`` get the whole header. Private tags belong to no level.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom.datadict import tag_for_keyword

from dicomstation.models import Level

__all__ = ["HEADER_DEFAULTS", "level_tags"]


def _hex(*keywords: str) -> frozenset[str]:
    tags = (tag_for_keyword(k) for k in keywords)
    return frozenset(f"{t:08X}" for t in tags if t is not None)


# PS3.18 Tables 10.6.3-3..5 minus what the index rows hold (records.LEVEL_SQL), and minus
# Specific Character Set: DICOM JSON is UTF-8 whatever the stored one (PS3.18 F.2)
_STUDY_QIDO = ("TimezoneOffsetFromUTC",)
_SERIES_QIDO = (
    *_STUDY_QIDO,
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
)
_IMAGE_QIDO = (*_SERIES_QIDO, "BitsAllocated")
HEADER_DEFAULTS: dict[Level, frozenset[str]] = {
    Level.STUDY: _hex(*_STUDY_QIDO),
    Level.SERIES: _hex(*_SERIES_QIDO),
    Level.IMAGE: _hex(*_IMAGE_QIDO),
}
_IE_LEVEL = {
    "Patient": Level.STUDY,
    "Study": Level.STUDY,
    "Series": Level.SERIES,
    "Frame of Reference": Level.SERIES,
    "Equipment": Level.SERIES,
}
# listed in PS3.18 Tables 10.6.3-3/-4 but not in those IEs' modules
_QIDO_EXTRA = {
    Level.STUDY: _hex(
        "SpecificCharacterSet",
        "TimezoneOffsetFromUTC",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "InstanceAvailability",
        "QueryRetrieveLevel",
        "RetrieveURL",
    ),
    Level.SERIES: _hex("NumberOfSeriesRelatedInstances", "RetrieveURL", "QueryRetrieveLevel"),
}


@lru_cache(2)
def level_tags(level: Level) -> frozenset[str]:
    """Tags (8 upper-case hex digits) ``includefield=all`` returns for ``level``.

    Study: patient and study attributes. Series: those plus series attributes.
    """
    from dicomstation.export.iod import _tables

    _sop_iods, iod_modules, module_attributes = _tables()
    wanted = {Level.STUDY} if level is Level.STUDY else {Level.STUDY, Level.SERIES}
    keys = {
        module["key"]
        for modules in iod_modules.values()
        for module in modules
        if _IE_LEVEL.get(module["ie"]) in wanted
    }
    keywords = {
        attribute["keyword"]
        for key in keys
        for attribute in module_attributes.get(key, [])
        if not attribute["path"]
    }
    extra = frozenset().union(*(_QIDO_EXTRA[w] for w in wanted))
    return _hex(*keywords) | extra
