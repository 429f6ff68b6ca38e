"""Clean Graphics (PS3.15 E.3.x, Table E.1-1 column C) and the Retain Safe Private refusal."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from dicomstation.deid import Option, Pseudonyms, deidentify, encode
from dicomstation.errors import ConfigError
from tests.deid.synth import KEY, OTHER_SOP, SOP, config, ct_instance, ref
from tests.deid.test_send_deid import ORIGINALS

PSEUDO = Pseudonyms(KEY)
CLEAN_GRAPHICS_CODE = "113103"


def _annotated() -> Dataset:
    """The synthetic CT with an overlay (and its comment), a curve and a graphic annotation."""
    ds = ct_instance()
    ds.add_new(0x60004000, "LT", "overlay drawn for Doe^Jane MRN12345")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50000010, "US", 2)
    ds.add_new(0x50000020, "CS", "TAC")
    ds.add_new(0x50000022, "LO", "curve of Doe^Jane")
    ds.add_new(0x50003000, "OW", b"\x01\x00\x02\x00")
    text = Dataset()
    text.UnformattedTextValue = "lesion 2 cm, Doe^Jane MRN12345"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    text.BoundingBoxTopLeftHandCorner = [1.0, 1.0]
    text.BoundingBoxBottomRightHandCorner = [2.0, 2.0]
    text.BoundingBoxTextHorizontalJustification = "LEFT"
    line = Dataset()
    line.GraphicAnnotationUnits = "PIXEL"
    line.GraphicDimensions = 2
    line.NumberOfGraphicPoints = 2
    line.GraphicData = [0.5, 0.5, 1.5, 1.5]
    line.GraphicType = "POLYLINE"
    line.GraphicFilled = "N"
    annotation = Dataset()
    image = ref(OTHER_SOP)
    image.ReferencedSOPClassUID = CTImageStorage
    annotation.ReferencedImageSequence = Sequence([image])
    annotation.GraphicLayer = "MEASURE"
    annotation.TextObjectSequence = Sequence([text])
    annotation.GraphicObjectSequence = Sequence([line])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    return ds


def _codes(ds: Dataset) -> set[str]:
    return {str(item.CodeValue) for item in ds.DeidentificationMethodCodeSequence}


def test_clean_graphics_keeps_annotations_cleaned_and_removes_bitmaps() -> None:
    result = deidentify(_annotated(), config(Option.CLEAN_GRAPHICS, Option.CLEAN_DESCRIPTORS))
    ds = result.dataset
    assert not [e for e in ds if e.tag.group & 0xFF00 in (0x5000, 0x6000)]  # planes, curve gone
    (annotation,) = ds.GraphicAnnotationSequence
    text = str(annotation.TextObjectSequence[0].UnformattedTextValue)
    assert text.startswith("lesion 2 cm") and "Doe" not in text and "MRN12345" not in text
    assert list(annotation.GraphicObjectSequence[0].GraphicData) == [0.5, 0.5, 1.5, 1.5]
    assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == PSEUDO.uid(OTHER_SOP)
    assert ds.SOPInstanceUID == PSEUDO.uid(SOP)
    assert CLEAN_GRAPHICS_CODE in _codes(ds)
    raw = encode(result)
    for original in ORIGINALS:
        assert original.encode() not in raw, original


def test_annotation_text_follows_its_own_row_without_clean_descriptors() -> None:
    # Table E.1-1: Unformatted Text Value is D, cleaned (C) only by Clean Descriptors
    ds = deidentify(_annotated(), config(Option.CLEAN_GRAPHICS)).dataset
    text = str(ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue)
    assert "lesion" not in text and "Doe" not in text
    assert ds.GraphicAnnotationSequence[0].GraphicObjectSequence[0].GraphicType == "POLYLINE"


def test_basic_profile_does_not_claim_clean_graphics() -> None:
    ds = deidentify(_annotated(), config()).dataset
    assert CLEAN_GRAPHICS_CODE not in _codes(ds)
    assert not [e for e in ds if e.tag.group & 0xFF00 in (0x5000, 0x6000)]


def test_retain_safe_private_is_refused_naming_the_missing_table() -> None:
    with pytest.raises(ConfigError, match=r"Retain Safe Private.*Table E\.3\.10-1"):
        config(Option.RETAIN_SAFE_PRIVATE)
