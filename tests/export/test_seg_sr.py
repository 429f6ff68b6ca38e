"""DICOM SEG and TID 1500 SR: validity (dciodvfy), round trip, geometry against the source."""

from __future__ import annotations

import io
from copy import deepcopy
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from dicomstation import processing as proc
from dicomstation.errors import ExportError
from dicomstation.export import (
    ExportOptions,
    Segment,
    SourceSeries,
    build_seg,
    build_sr,
    read_seg_labelmap,
    read_seg_masks,
    read_sr_measurements,
)
from tests.export.conftest import assert_valid

OPTIONS = ExportOptions(
    series_description="Spheres",
    series_number=901,
    institution_name="Test Hospital",
    institutional_department_name="Radiology",
)


def _segments(ct: SourceSeries) -> list[Segment]:
    bright = proc.keep_largest_island(proc.threshold(ct.volume, 250, 350))
    mid = proc.threshold(ct.volume, 100, 200)
    return [
        Segment("Bright sphere", bright, codes.SCT.Tissue, codes.SCT.Bone, color=(241, 214, 145)),
        Segment("Middle sphere", mid, codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion),
    ]


def test_seg_is_valid_and_round_trips(ct: SourceSeries, tmp_path: Path) -> None:
    segments = _segments(ct)
    seg = build_seg(ct, segments, OPTIONS)
    (path,) = assert_valid([seg], tmp_path)
    back = hd.seg.segread(path)
    assert back.SeriesDescription == "Spheres" and back.SeriesNumber == 901
    assert back.InstitutionName == "Test Hospital"
    assert back.InstitutionalDepartmentName == "Radiology"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "FrameOfReferenceUID"):
        assert back.get(keyword) == ct.first.get(keyword), keyword
    assert back.SeriesInstanceUID != ct.series_uid
    desc = back.get_segment_description(2)
    assert desc.segment_label == "Middle sphere"
    assert desc.segmented_property_type == codes.SCT.Lesion
    assert desc.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
    lab = back.get_segment_description(1).RecommendedDisplayCIELabValue
    assert hd.color.CIELabColor.from_dicom_value(lab).to_rgb() == pytest.approx(
        (241, 214, 145), abs=1
    )
    labels = read_seg_labelmap(pydicom.dcmread(path), ct.volume)
    assert labels.geometry_equal(ct.volume)
    for number, segment in enumerate(segments, start=1):
        assert np.array_equal(labels.array == number, segment.mask.array)


def test_seg_frames_reference_their_source_images(ct: SourceSeries, tmp_path: Path) -> None:
    seg = build_seg(ct, _segments(ct))
    (path,) = assert_valid([seg], tmp_path)
    back = hd.seg.segread(path)
    by_uid = {ds.SOPInstanceUID: ds for ds in ct.datasets}
    (series,) = back.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == ct.series_uid
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} == set(by_uid)
    for frame in back.PerFrameFunctionalGroupsSequence:
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        (source,) = frame.DerivationImageSequence[0].SourceImageSequence
        image = by_uid[source.ReferencedSOPInstanceUID]
        assert np.allclose(
            [float(v) for v in position], [float(v) for v in image.ImagePositionPatient]
        )
    shared = back.SharedFunctionalGroupsSequence[0]
    assert np.allclose(shared.PixelMeasuresSequence[0].PixelSpacing, ct.first.PixelSpacing)


def test_overlapping_segments_are_stacked(ct: SourceSeries, tmp_path: Path) -> None:
    water_and_more = proc.threshold(ct.volume, -10, 1000)
    bright = proc.threshold(ct.volume, 250, 350)
    seg = build_seg(ct, [Segment("Body", water_and_more), Segment("Bright", bright)])
    (path,) = assert_valid([seg], tmp_path)
    masks = read_seg_masks(pydicom.dcmread(path), ct.volume)
    assert np.array_equal(masks[1].array, water_and_more.array)
    assert np.array_equal(masks[2].array, bright.array)
    with pytest.raises(ExportError, match="label map"):
        read_seg_labelmap(pydicom.dcmread(path), ct.volume)


def test_seg_rejects_empty_or_foreign_masks(ct: SourceSeries) -> None:
    empty = ct.volume.with_array(np.zeros(ct.volume.spatial_shape, dtype=bool))
    with pytest.raises(ExportError, match="empty"):
        build_seg(ct, [Segment("Nothing", empty)])
    with pytest.raises(ExportError):
        build_seg(ct, [])
    foreign = hd.Volume(
        np.ones((2, 2, 2), dtype=bool), np.eye(4), "PATIENT", frame_of_reference_uid="1.2.3"
    )
    with pytest.raises(ExportError, match="frame of reference"):
        build_seg(ct, [Segment("Elsewhere", foreign)])


def test_sr_is_valid_and_holds_the_statistics(ct: SourceSeries, tmp_path: Path) -> None:
    segments = _segments(ct)
    seg = build_seg(ct, segments)
    stats = proc.segment_statistics(
        ct.volume, {n: s.mask for n, s in enumerate(segments, 1)}, {1: "Bright", 2: "Middle"}
    )
    sr = build_sr(seg, ct, stats, OPTIONS)
    (path,) = assert_valid([sr], tmp_path)
    back = pydicom.dcmread(path)
    assert back.StudyInstanceUID == ct.first.StudyInstanceUID
    assert back.InstitutionName == "Test Hospital"
    values = read_sr_measurements(back)
    assert values["Bright #1"]["Mean"] == pytest.approx(300.0)
    assert values["Middle #2"]["Volume"] == pytest.approx(stats[1].volume_ml)
    assert values["Middle #2"]["Standard Deviation"] == pytest.approx(0.0)
    evidence = {
        item.ReferencedSOPInstanceUID
        for study in back.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    assert seg.SOPInstanceUID in evidence
    assert {ds.SOPInstanceUID for ds in ct.datasets} <= evidence
    report = hd.sr.Comprehensive3DSR.from_dataset(back)
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert groups[0].referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    unit = groups[0].get_measurements(name=codes.SCT.Mean)[0].unit
    assert unit.value == "[hnsf'U]"


def test_sr_rejects_unknown_segments(ct: SourceSeries) -> None:
    segments = _segments(ct)
    seg = build_seg(ct, segments[:1])
    stats = proc.segment_statistics(ct.volume, {5: segments[0].mask})
    with pytest.raises(ExportError):
        build_sr(seg, ct, stats)
    with pytest.raises(ExportError):
        build_sr(seg, ct, [])


def test_seg_from_a_label_map_equals_seg_from_masks(ct: SourceSeries, tmp_path: Path) -> None:
    from dicomstation.export import SegmentInfo, build_seg_from_labelmap

    segments = _segments(ct)
    labels = np.zeros(ct.volume.spatial_shape, dtype=np.int32)
    for number, segment in enumerate(segments, start=1):
        labels[segment.mask.array] = number
    infos = [SegmentInfo(s.label, s.category, s.property_type, s.color) for s in segments]
    seg = build_seg_from_labelmap(ct, ct.volume.with_array(labels), infos)
    (path,) = assert_valid([seg], tmp_path)
    reference = build_seg(ct, segments)
    back = hd.seg.segread(path)
    assert back.NumberOfFrames == reference.NumberOfFrames
    assert np.array_equal(back.pixel_array, reference.pixel_array)
    with pytest.raises(ExportError, match="no segment description"):
        build_seg_from_labelmap(ct, ct.volume.with_array(labels), infos[:1])
    with pytest.raises(ExportError, match="non-negative integers"):
        build_seg_from_labelmap(ct, ct.volume.with_array(labels * 0.5), infos)
    with pytest.raises(ExportError, match="empty"):
        build_seg_from_labelmap(ct, ct.volume.with_array(labels * 0), infos)


def _without_random_values(ds: pydicom.Dataset) -> bytes:
    """``ds`` encoded, with the values a writer makes anew each time (UIDs, times) blanked."""
    copy = deepcopy(ds)
    for keyword in ("InstanceCreationTime", "ContentTime", "SOPInstanceUID", "SeriesInstanceUID"):
        setattr(copy, keyword, "1" if keyword.endswith("UID") else "000000")
    for element in list(copy.iterall()):
        if element.keyword in ("TrackingUID", "DimensionOrganizationUID"):
            element.value = "1"
        elif element.keyword == "ContributionDateTime":
            element.value = "20000101"
    copy.file_meta.MediaStorageSOPInstanceUID = "1"
    buffer = io.BytesIO()
    copy.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_one_segment_export_from_the_label_map_is_the_seg_of_its_mask(
    ct: SourceSeries, tmp_path: Path
) -> None:
    """The pipeline's ``seg`` kind encodes a one-segment label map as it is: the SEG of its mask."""
    from dicomstation.pipeline.exports import ExportInput, export_kind
    from dicomstation.pipeline.segmenters import Segmentation, SegmentDescription

    mask = proc.keep_largest_island(proc.threshold(ct.volume, 250, 350))
    found = Segmentation.from_mask(mask, SegmentDescription(1, "Bright", color=(241, 214, 145)))
    (made,) = export_kind("seg").build(ExportInput(ct, OPTIONS, found))
    s = found.segments[0]
    reference = build_seg(
        ct,
        [
            Segment(
                s.label,
                mask,
                s.term.category,
                s.term.property_type,
                s.color,
                s.algorithm,
                s.algorithm_name,
            )
        ],
        OPTIONS,
    )
    assert made.NumberOfFrames == reference.NumberOfFrames > 0
    assert _without_random_values(made) == _without_random_values(reference)
    assert_valid([made], tmp_path)
