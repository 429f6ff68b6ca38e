"""De-identify one dataset: burned-in check, the profile, file meta, what was done.

:func:`deidentify` is a pure function of (dataset, config): the same input and key give the
same output on every worker, machine and rerun (no clock, no random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from dicomstation.deid.config import Change, DeidConfig
from dicomstation.deid.iod import attribute_types
from dicomstation.deid.keys import Pseudonyms, patient_identity
from dicomstation.deid.pixels import (
    PixelRule,
    blank_regions,
    burned_in_reason,
    matching_rule,
)
from dicomstation.deid.table import (
    BASIC_PROFILE_CODE,
    CLEAN_PIXEL_DATA_CODE,
    EDITION,
    Action,
    Option,
    profile_table,
)
from dicomstation.deid.values import is_registered_uid
from dicomstation.deid.walker import Walker, maps_unlisted_uid, raw_vr
from dicomstation.errors import DeidentificationError

__all__ = ["DeidResult", "Mapping", "deidentify"]

_MIN_IDENTIFYING = 4
_IDENTIFYING_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "DA", "DT", "UI", "AE"})


@dataclass(frozen=True)
class Mapping:
    """One original -> pseudonym pair (for the re-identification ledger).

    ``kind`` is ``PatientID``, ``PatientName``, ``StudyInstanceUID``, ``SeriesInstanceUID``
    or ``SOPInstanceUID``.
    """

    kind: str
    original: str
    pseudonym: str


@dataclass(frozen=True)
class DeidResult:
    """A de-identified dataset and what was done to it.

    Parameters
    ----------
    dataset : Dataset
        The de-identified dataset (with new file meta).
    changes : tuple of Change
        Every attribute changed, removed or emptied, nested ones with their path.
    mappings : tuple of Mapping
        Original -> pseudonym pairs of this instance.
    pixel_rule : str
        Name of the pixel rule applied ('' when none).
    date_offset_days : int
        The patient's date shift (0 unless the Modified Dates option is on).
    """

    dataset: Dataset
    changes: tuple[Change, ...]
    mappings: tuple[Mapping, ...]
    pixel_rule: str
    date_offset_days: int


def _values(elem: DataElement) -> list[str]:
    if elem.value is None or elem.value == "":
        return []
    values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
    out: list[str] = []
    for value in values:
        text = str(value).strip()
        out.append(text)
        if elem.VR == "PN":
            out.extend(p.strip() for p in text.replace("=", "^").split("^"))
        if elem.VR == "DT":
            out.append(text[:8])
    return out


def _identifying(ds: Dataset, walker: Walker) -> frozenset[str]:
    """Strings of ``ds`` that the profile would not keep (masked wherever text is kept)."""
    found: set[str] = set()

    def visit(item: Dataset, path: str) -> None:
        for tag in list(item.keys()):
            if tag.group % 2:
                continue  # private: removed, and not decoded
            vr = raw_vr(item, tag)
            if vr and vr != "SQ" and vr not in _IDENTIFYING_VRS:
                continue  # numbers, codes, pixels: not decoded
            elem = item[tag]
            if elem.VR == "SQ":
                for sub in elem.value or []:
                    visit(sub, f"{path}{elem.keyword}[0].")
                continue
            if elem.VR not in _IDENTIFYING_VRS:
                continue
            action = walker.action_for(elem, path)
            unlisted_uid = action is None and elem.VR == "UI" and maps_unlisted_uid(elem.keyword)
            if action in (None, Action.KEEP, Action.CLEAN) and not unlisted_uid:
                continue
            shortest = 3 if elem.VR == "PN" else _MIN_IDENTIFYING  # family names like "Doe"
            found.update(
                v
                for v in _values(elem)
                if len(v) >= shortest and not (elem.VR == "UI" and is_registered_uid(v))
            )

    visit(ds, "")
    return frozenset(found)


def _pixels(ds: Dataset, config: DeidConfig, source: str) -> PixelRule | None:
    reason = burned_in_reason(ds)
    if reason is None:
        return None
    rule = matching_rule(ds, config.pixel_rules)
    if rule is None:
        if config.allow_burned_in:
            return None
        names = (str(ds.get(k, "")).strip() for k in ("Manufacturer", "ManufacturerModelName"))
        device = " ".join(n for n in names if n) or "unknown device"
        raise DeidentificationError(
            source,
            f"refused: {reason} ({device}); add a pixel rule for this device "
            "(--pixel-rules) or accept the risk (--allow-burned-in)",
        )
    try:
        blank_regions(ds, rule)
    except Exception as exc:  # any decoder failure: refuse rather than pass pixels through
        raise DeidentificationError(source, f"cannot clean pixel data: {exc}") from exc
    return rule


def _code(value: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = value[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = value[1]
    return item


def _record_method(ds: Dataset, config: DeidConfig, rule: PixelRule | None) -> None:
    options = sorted(config.options, key=lambda o: o.code[0])
    codes = [BASIC_PROFILE_CODE, *(o.code for o in options)]
    if rule is not None:
        codes.append(CLEAN_PIXEL_DATA_CODE)
        ds.BurnedInAnnotation = "NO"
    methods = [f"DICOM PS3.15 {EDITION} Annex E Basic Profile", "dicomstation deid"]
    methods += [f"kept {ds_keyword(t)}"[:64] for t in sorted(config.keep)]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = methods
    ds.DeidentificationMethodCodeSequence = Sequence([_code(c) for c in codes])
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in config.options:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in config.options:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def ds_keyword(tag: int) -> str:
    """Keyword of ``tag``, or ``GGGGEEEE`` when it has none."""
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or f"{tag:08X}"


def _file_meta(ds: Dataset, original: FileMetaDataset | None) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    syntax = original.get("TransferSyntaxUID") if original is not None else None
    meta.TransferSyntaxUID = UID(str(syntax)) if syntax else ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _mappings(before: dict[str, str], ds: Dataset) -> tuple[Mapping, ...]:
    return tuple(
        Mapping(kind, original, str(ds.get(kind, "")))
        for kind, original in before.items()
        if original and str(ds.get(kind, "")) != original
    )


_MAPPED = ("PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def deidentify(ds: Dataset, config: DeidConfig, *, source: str = "") -> DeidResult:
    """De-identify ``ds`` in place with the Basic Profile and the configured options.

    Parameters
    ----------
    ds : Dataset
        A complete instance (as read by :func:`pydicom.dcmread`); modified in place.
    config : DeidConfig
        Key, options, kept attributes, pixel rules.
    source : str
        Where the instance came from (named in errors only).

    Returns
    -------
    DeidResult

    Raises
    ------
    DeidentificationError
        If the instance may carry burned-in text and no rule cleans it, or cleaning fails.
    """
    where = source or str(ds.get("SOPInstanceUID", "instance"))
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise DeidentificationError(where, "not a composite instance (no SOP Class/Instance UID)")
    rule = _pixels(ds, config, where)
    pseudonyms = Pseudonyms(config.key, config.patient_prefix)
    identity = patient_identity(
        str(ds.get("PatientID", "")),
        str(ds.get("IssuerOfPatientID", "")),
        str(ds.get("PatientName", "")),
        str(ds.get("StudyInstanceUID", "")),
    )
    types = attribute_types(str(ds.SOPClassUID))
    walker = Walker(config, profile_table(), pseudonyms, identity, frozenset(), types)
    walker.identifying = _identifying(ds, walker)
    before = {kind: str(ds.get(kind, "")) for kind in _MAPPED}
    original_meta = getattr(ds, "file_meta", None)
    walker.dataset(ds)
    _record_method(ds, config, rule)
    ds.file_meta = _file_meta(ds, original_meta)
    dates_modified = Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in config.options
    return DeidResult(
        dataset=ds,
        changes=tuple(walker.changes),
        mappings=_mappings(before, ds),
        pixel_rule=rule.name if rule else "",
        date_offset_days=walker.offset if dates_modified else 0,
    )
