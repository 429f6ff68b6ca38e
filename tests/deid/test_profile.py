"""The Basic Profile and its options on synthetic instances: every action code, nesting."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomstation.deid import Option, Pseudonyms, deidentify, encode, parse_keep
from dicomstation.deid.keys import patient_identity
from dicomstation.errors import ConfigError
from tests.deid.synth import (
    FRAME,
    KEY,
    OTHER_SOP,
    SERIES,
    SOP,
    STUDY,
    config,
    ct_instance,
    ref,
)

PSEUDO = Pseudonyms(KEY)
IDENTITY = patient_identity("MRN12345", "", "Doe^Jane", STUDY)


def test_basic_profile_applies_each_action_code() -> None:
    result = deidentify(ct_instance(), config())
    ds = result.dataset
    # U: keyed 2.25 UIDs, the same function for the instance and every reference to it
    assert ds.SOPInstanceUID == PSEUDO.uid(SOP) and ds.SOPInstanceUID.startswith("2.25.")
    assert ds.StudyInstanceUID == PSEUDO.uid(STUDY)
    assert ds.FrameOfReferenceUID == PSEUDO.uid(FRAME)
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == PSEUDO.uid(OTHER_SOP)
    nested = ds.ReferencedSeriesSequence[0]
    assert nested.SeriesInstanceUID == PSEUDO.uid(SERIES)
    assert nested.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == PSEUDO.uid(OTHER_SOP)
    # Z (PatientName, PatientID get keyed pseudonyms; others are emptied)
    assert ds.PatientName == PSEUDO.patient_name(IDENTITY)
    assert ds.PatientID == PSEUDO.patient_id(IDENTITY)
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "AccessionNumber", "StudyID"):
        assert keyword in ds and not ds[keyword].value, keyword
    assert not ds.ReferringPhysicianName
    # X: removed (X/D and X/Z/D narrowed to X: Type 3 in the CT IOD)
    for keyword in ("PatientAge", "StudyDescription", "SeriesDescription", "ImageComments",
                    "SeriesDate", "InstitutionName", "StationName", "DeviceSerialNumber",
                    "RequestAttributesSequence"):  # fmt: skip
        assert keyword not in ds, keyword
    # Z/D narrowed to Z (Type 2 in the CT IOD)
    assert "ContentDate" in ds and not ds.ContentDate
    # private attributes and the whole overlay plane are removed; the rest is kept
    assert not [e for e in ds if e.tag.group % 2 or e.tag.group == 0x6000]
    assert ds.Manufacturer == "ACME" and ds.BodyPartExamined == "CHEST"
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_what_was_done_is_recorded() -> None:
    ds = deidentify(ct_instance(), config()).dataset
    assert ds.PatientIdentityRemoved == "YES"
    assert "2026d" in ds.DeidentificationMethod[0]
    codes = [(c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM")]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


@pytest.mark.parametrize(
    ("option", "code", "kept"),
    [
        (Option.RETAIN_UIDS, "113110", {"SOPInstanceUID": SOP, "FrameOfReferenceUID": FRAME}),
        (Option.RETAIN_DEVICE_IDENTITY, "113109", {"StationName": "CTROOM01"}),
        (Option.RETAIN_INSTITUTION_IDENTITY, "113112", {"InstitutionName": "General Hospital"}),
        (Option.RETAIN_PATIENT_CHARACTERISTICS, "113108", {"PatientAge": "053Y"}),
        (Option.RETAIN_LONGITUDINAL_FULL_DATES, "113106", {"StudyDate": "20200315"}),
    ],
)
def test_retain_options_keep_their_columns(option: Option, code: str, kept: dict[str, str]) -> None:
    ds = deidentify(ct_instance(), config(option)).dataset
    for keyword, value in kept.items():
        assert str(ds.get(keyword)) == value, keyword
    assert code in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert ds.PatientName != "Doe^Jane"  # the rest of the profile still applies


def test_modified_dates_shift_every_date_by_the_patients_offset() -> None:
    result = deidentify(ct_instance(), config(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES))
    ds = result.dataset
    offset = PSEUDO.date_offset_days(IDENTITY)
    assert offset < 0 and result.date_offset_days == offset
    expected = (dt.date(2020, 3, 15) + dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert ds.StudyDate == expected and ds.SeriesDate == expected
    assert ds.AcquisitionDateTime == expected + "101010.5"  # the time of day is kept
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    # another study of the same patient moves by the same offset
    other = ct_instance()
    other.StudyInstanceUID = "1.2.826.0.1.9999.77"
    shifted = deidentify(other, config(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)).dataset
    assert shifted.StudyDate == expected


def test_clean_descriptors_keeps_text_without_the_identifying_parts() -> None:
    ds = deidentify(ct_instance(), config(Option.CLEAN_DESCRIPTORS)).dataset
    assert ds.StudyDescription == "CT chest for * *"
    assert ds.ImageComments == "scanned by * *"
    assert ds.SeriesDescription == "axial"


def test_keep_list_keeps_and_is_recorded() -> None:
    ds = deidentify(ct_instance(), config(keep=parse_keep(["PatientAge", "00081030"]))).dataset
    assert ds.PatientAge == "053Y" and ds.StudyDescription == "CT chest for Jane Doe"
    assert "kept PatientAge" in ds.DeidentificationMethod
    with pytest.raises(ConfigError, match="NoSuchKeyword"):
        parse_keep(["NoSuchKeyword"])


def test_options_that_cannot_be_honoured_arerefused() -> None:
    with pytest.raises(ConfigError, match="Retain Safe Private"):
        config(Option.RETAIN_SAFE_PRIVATE)
    with pytest.raises(ConfigError, match="not both"):
        config(Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)


def _item(code: str, value_type: str, **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = value_type
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = code, "DCM", code
    item.ConceptNameCodeSequence = Sequence([name])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _sr() -> Dataset:
    ds = ct_instance()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ds.Modality = "SR"
    comment = _item("121106", "TEXT", TextValue="Jane Doe has a nodule")  # E.3.4-1: X
    finding = _item("121071", "TEXT", TextValue="nodule seen by Gregory House")  # D
    local = _item("LOCAL1", "TEXT", TextValue="told Jane Doe")  # not in E.3.4-1: kept
    observer = _item("121008", "PNAME", PersonName="House^Gregory")
    image = _item("121112", "IMAGE")
    image.ReferencedSOPSequence = Sequence([ref(OTHER_SOP)])
    ds.ContentSequence = Sequence([comment, finding, local, observer, image])
    return ds


def test_structured_content_items_follow_table_e_3_4_1() -> None:
    ds = deidentify(_sr(), config()).dataset
    items = list(ds.ContentSequence)
    codes = [i.ConceptNameCodeSequence[0].CodeValue for i in items]
    assert "121106" not in codes  # Comment: removed (X)
    texts = {i.ConceptNameCodeSequence[0].CodeValue: i.TextValue for i in items if "TextValue" in i}
    assert texts == {"121071": "DEIDENTIFIED", "LOCAL1": "told * *"}  # D; kept but cleaned
    person = next(i for i in items if i.ValueType == "PNAME")
    assert "House" not in str(person.PersonName)
    image = next(i for i in items if i.ValueType == "IMAGE")
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == PSEUDO.uid(OTHER_SOP)
    data = encode(deidentify(_sr(), config()))
    for original in (b"Jane", b"Gregory", b"MRN12345", b"20200315", SOP.encode()):
        assert original not in data


def test_same_input_same_key_same_bytes_other_key_other_uids() -> None:
    first = encode(deidentify(ct_instance(), config()))
    assert encode(deidentify(ct_instance(), config())) == first
    other = deidentify(ct_instance(), config().__class__(key=type(KEY)("x" * 40))).dataset
    assert other.SOPInstanceUID != deidentify(ct_instance(), config()).dataset.SOPInstanceUID
