"""FastSegmentation (our subclass) makes exactly the dataset highdicom's Segmentation makes."""

from __future__ import annotations

import io
from typing import Any

import highdicom as hd
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dicomstation import processing as proc
from dicomstation.export import SourceSeries, build_seg
from dicomstation.export.seg import Segment
from dicomstation.export.seg_fast import AVAILABLE, CHECKED_VERSION, FastSegmentation

#: Values highdicom makes afresh on every build (clock, new UIDs): copied before comparing.
_VOLATILE = (
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "ContributionDateTime",
    "DimensionOrganizationUID",
)


def _encoded(ds: Dataset, like: Dataset | None = None) -> bytes:
    if like is not None:
        _copy_volatile(like, ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _copy_volatile(source: Dataset, target: Dataset) -> None:
    for keyword in _VOLATILE:
        if keyword in source and keyword in target:
            setattr(target, keyword, source[keyword].value)
    for element in source:
        if element.VR == "SQ" and element.keyword in target:
            for a, b in zip(element.value, target[element.keyword].value, strict=True):
                _copy_volatile(a, b)


def _arguments(ct: SourceSeries, pixels: Any, sources: list[Dataset]) -> dict[str, Any]:
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Bright",
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Bone,
        algorithm_type="MANUAL",
        tracking_uid="1.2.826.0.1.3680043.10.511.7.99.1",
        tracking_id="Bright #1",
    )
    return {
        "source_images": sources,
        "pixel_array": pixels,
        "segmentation_type": hd.seg.SegmentationTypeValues.BINARY,
        "segment_descriptions": [description],
        "series_instance_uid": "1.2.826.0.1.3680043.10.511.7.99.2",
        "series_number": 300,
        "sop_instance_uid": "1.2.826.0.1.3680043.10.511.7.99.3",
        "instance_number": 1,
        "manufacturer": "dicomstation",
        "manufacturer_model_name": "dicomstation",
        "software_versions": "test",
        "device_serial_number": "1",
    }


@pytest.mark.skipif(not AVAILABLE, reason=f"FastSegmentation is checked on {CHECKED_VERSION}")
@pytest.mark.parametrize("as_volume", [False, True], ids=["plain-array", "volume (highdicom)"])
def test_same_dataset_as_highdicom(ct: SourceSeries, as_volume: bool) -> None:
    mask = proc.threshold(ct.volume, 250, 350)
    labels = mask.with_array(np.asarray(mask.array).astype(np.uint8))
    ordered = ct.datasets_in_order(labels)
    assert ordered is not None
    pixels: Any = labels if as_volume else labels.array
    sources = list(ct.datasets) if as_volume else ordered
    theirs = hd.seg.Segmentation(**_arguments(ct, pixels, sources))
    ours = FastSegmentation(**_arguments(ct, pixels, sources))
    assert len(ours.PerFrameFunctionalGroupsSequence) > 1
    assert _encoded(ours, like=theirs) == _encoded(theirs)


@pytest.mark.skipif(not AVAILABLE, reason=f"FastSegmentation is checked on {CHECKED_VERSION}")
def test_build_seg_uses_it_and_refuses_what_highdicom_refuses(ct: SourceSeries) -> None:
    bright = proc.threshold(ct.volume, 250, 350)
    assert isinstance(build_seg(ct, [Segment("Bright", bright)]), FastSegmentation)
    mask = bright.with_array(np.asarray(bright.array).astype(np.uint8))
    sources = ct.datasets_in_order(mask)
    assert sources is not None
    twisted = [Dataset() for _ in sources]
    for copy, ds in zip(twisted, sources, strict=True):
        copy.update(ds)
    twisted[3].ImageOrientationPatient = [0, 1, 0, 0, 0, 1]
    for cls in (hd.seg.Segmentation, FastSegmentation):
        with pytest.raises(ValueError, match="shared orientation"):
            cls(**_arguments(ct, mask.array, twisted))
