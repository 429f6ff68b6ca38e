"""Segment statistics as a TID 1500 Measurement Report (Comprehensive 3D SR, highdicom).

Each segment becomes one "Volumetric ROI measurements" group (TID 1411) that
references the segment in the SEG (and, through it, the source series), with
Volume (mL) and Mean / Minimum / Maximum / Standard Deviation of intensity. A
segment of a projection image (no patient geometry: CR, DX...) is a "Planar ROI
measurements" group (TID 1410) referencing its SEG frame, with an Area (mm2) instead.
The SEG and the source images are listed as evidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomstation.errors import ExportError
from dicomstation.export.common import (
    ExportOptions,
    SourceSeries,
    apply_options,
    new_uid,
    unplaced_image,
    with_areas,
)
from dicomstation.processing.stats import SegmentStatistics

__all__ = ["build_sr", "intensity_unit", "read_sr_measurements"]

MILLILITER = Code("mL", "UCUM", "milliliter")
SQUARE_MILLIMETER = Code("mm2", "UCUM", "square millimeter")
HOUNSFIELD = Code("[hnsf'U]", "UCUM", "Hounsfield unit")
NO_UNITS = Code("1", "UCUM", "no units")
_PROCEDURES = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
}


def intensity_unit(modality: str) -> Code:
    """The UCUM unit of intensities for a modality (HU for CT, no units otherwise)."""
    return HOUNSFIELD if modality == "CT" else NO_UNITS


def _size(stat: SegmentStatistics, image: Dataset | None) -> list[tuple[Code, float, Code]]:
    """Volume (mL) of a placed segment; Area (mm2) on a projection image with a pixel size."""
    if image is None:
        return [(codes.SCT.Volume, stat.volume_ml, MILLILITER)]
    area = stat.area_mm2  # set by with_areas when the image gives its pixel size
    return [] if area is None else [(codes.SCT.Area, area, SQUARE_MILLIMETER)]


def _measurements(
    stat: SegmentStatistics, unit: Code, image: Dataset | None
) -> list[hd.sr.Measurement]:
    values = [
        *_size(stat, image),
        (codes.SCT.Mean, stat.mean, unit),
        (codes.SCT.Minimum, stat.minimum, unit),
        (codes.SCT.Maximum, stat.maximum, unit),
        (codes.SCT.StandardDeviation, stat.std, unit),
    ]
    return [
        hd.sr.Measurement(name=name, value=float(value), unit=u)
        for name, value, u in values
        if math.isfinite(value)
    ]


def _segment_of(frame: Dataset, shared: Dataset) -> int | None:
    holder = frame if "SegmentIdentificationSequence" in frame else shared
    if "SegmentIdentificationSequence" not in holder:
        return None
    return int(holder.SegmentIdentificationSequence[0].ReferencedSegmentNumber)


def _referenced_segment(seg: hd.seg.Segmentation, number: int) -> hd.sr.ReferencedSegment:
    """The SR reference to one segment and what it was segmented from.

    A SEG made from one series (what our exporters make) is referenced with its
    *Source series for segmentation* (TID 1411; what dcmqi writes): the SEG's
    frames already name each source image, and the SR's evidence lists them all.
    A SEG over several series gets the source images of the segment's frames,
    gathered from the per-frame or the shared functional groups (highdicom's
    ``ReferencedSegment.from_segmentation`` expects them in every frame).
    """
    series = seg.get("ReferencedSeriesSequence", [])
    if len(series) == 1:
        return hd.sr.ReferencedSegment(
            seg.SOPClassUID,
            seg.SOPInstanceUID,
            number,
            source_series=hd.sr.SourceSeriesForSegmentation(str(series[0].SeriesInstanceUID)),
        )
    shared = seg.SharedFunctionalGroupsSequence[0]
    sources: dict[str, hd.sr.SourceImageForSegmentation] = {}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        if _segment_of(frame, shared) != number:
            continue
        for derivation in frame.get("DerivationImageSequence", []):
            for image in derivation.get("SourceImageSequence", []):
                uid = str(image.ReferencedSOPInstanceUID)
                sources.setdefault(
                    uid, hd.sr.SourceImageForSegmentation(str(image.ReferencedSOPClassUID), uid)
                )
    if sources:
        return hd.sr.ReferencedSegment(
            seg.SOPClassUID, seg.SOPInstanceUID, number, source_images=list(sources.values())
        )
    return hd.sr.ReferencedSegment(
        seg.SOPClassUID,
        seg.SOPInstanceUID,
        number,
        source_series=hd.sr.SourceSeriesForSegmentation(str(series[0].SeriesInstanceUID)),
    )


def _group(
    seg: hd.seg.Segmentation,
    stat: SegmentStatistics,
    unit: Code,
    options: ExportOptions,
    image: Dataset | None,
) -> (
    hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
):
    """TID 1411 of a placed segment; TID 1410 (planar) of one on a projection ``image``."""
    try:
        description = seg.get_segment_description(stat.segment_number)
    except (KeyError, IndexError) as exc:
        raise ExportError(f"SEG has no segment {stat.segment_number}") from exc
    fields: dict[str, Any] = {
        "tracking_identifier": hd.sr.TrackingIdentifier(
            uid=new_uid(), identifier=f"{stat.label[:56]} #{stat.segment_number}"
        ),
        "finding_type": description.segmented_property_type,
        "finding_category": description.segmented_property_category,
        "algorithm_id": hd.sr.AlgorithmIdentification(
            name="dicomstation segment statistics", version=options.software_versions[:64]
        ),
        "measurements": _measurements(stat, unit, image),
    }
    if image is None:
        referenced = _referenced_segment(seg, stat.segment_number)
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=referenced, **fields
        )
    frame = hd.sr.ReferencedSegmentationFrame(
        seg.SOPClassUID,
        seg.SOPInstanceUID,
        frame_number=_frame_of_segment(seg, stat.segment_number),
        segment_number=stat.segment_number,
        source_image=hd.sr.SourceImageForSegmentation(image.SOPClassUID, image.SOPInstanceUID),
    )
    # highdicom 0.28 writes the segment number beside the frame number; the standard's
    # Referenced Segment Number (1C) is absent when a frame is named (dciodvfy: an error).
    # The frame alone identifies the segment. See docs/upstream/highdicom.md.
    reference = frame[0].ReferencedSOPSequence[0]
    if "ReferencedFrameNumber" in reference and "ReferencedSegmentNumber" in reference:
        del reference.ReferencedSegmentNumber
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_segment=frame, **fields)


def _frame_of_segment(seg: hd.seg.Segmentation, number: int) -> int:
    """The (1-based) SEG frame holding segment ``number`` of a one-image segmentation."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        if _segment_of(frame, shared) == number:
            return index
    raise ExportError(f"SEG {seg.SOPInstanceUID} has no frame of segment {number}")


def build_sr(
    seg: hd.seg.Segmentation,
    source: SourceSeries,
    statistics: Sequence[SegmentStatistics],
    options: ExportOptions | None = None,
) -> hd.sr.Comprehensive3DSR:
    """Build a TID 1500 SR of ``statistics`` for the segments of ``seg``.

    Parameters
    ----------
    seg : highdicom.seg.Segmentation
        The SEG the statistics were computed from (see :func:`build_seg`).
    source : SourceSeries
        The segmented images (evidence and observation subject).
    statistics : sequence of SegmentStatistics
        One per reported segment (``segment_number`` must exist in ``seg``).
    options : ExportOptions, optional
        Series description/number, institution tags.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
    """
    options = options or ExportOptions()
    if not statistics:
        raise ExportError("a measurement report needs at least one segment's statistics")
    unit = intensity_unit(source.modality)
    image = unplaced_image(source)  # a projection image: planar groups
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=new_uid(), name=options.manufacturer_model_name[:64]
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=_PROCEDURES.get(source.modality, codes.cid100.ImagingProcedure),
        imaging_measurements=[
            _group(seg, s, unit, options, image) for s in with_areas(statistics, source)
        ],
    )
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=[seg, *source.datasets],  # the SEG first: patient and study come from it
            content=report,
            series_instance_uid=new_uid(),
            series_number=options.number(source.first, 300),
            sop_instance_uid=new_uid(),
            instance_number=1,
            manufacturer=options.manufacturer,
            institution_name=options.institution_name,
            institutional_department_name=options.institutional_department_name,
            is_complete=True,
            series_description=options.description("Segment statistics"),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build SR for SEG {seg.SOPInstanceUID}: {exc}") from exc
    apply_options(sr, options)
    return sr


_SR_CLASSES: dict[str, Any] = {
    "1.2.840.10008.5.1.4.1.1.88.34": hd.sr.Comprehensive3DSR,
    "1.2.840.10008.5.1.4.1.1.88.33": hd.sr.ComprehensiveSR,
    "1.2.840.10008.5.1.4.1.1.88.22": hd.sr.EnhancedSR,
}


def read_sr_measurements(dataset: Dataset) -> dict[str, dict[str, float]]:
    """Read back the measurements of a TID 1500 SR from any writer (highdicom, dcmqi...).

    Returns
    -------
    dict
        ``{tracking identifier: {measurement name: value}}`` for every
        volumetric, planar and image-level measurement group; a derivation
        (dcmqi writes Mean/Maximum... as derivations of one concept) is added
        to the name in parentheses.
    """
    uid = dataset.get("SOPInstanceUID", "?")
    kind = _SR_CLASSES.get(str(dataset.get("SOPClassUID", "")))
    if kind is None:
        raise ExportError(f"{uid} is not an Enhanced / Comprehensive (3D) SR document")
    try:
        content: Any = kind.from_dataset(dataset, copy=False).content
        groups = [
            *content.get_volumetric_roi_measurement_groups(),
            *content.get_planar_roi_measurement_groups(),
            *content.get_image_measurement_groups(),
        ]
    except (ValueError, AttributeError, TypeError) as exc:
        raise ExportError(f"{uid} is not a readable TID 1500 SR: {exc}") from exc
    out: dict[str, dict[str, float]] = {}
    for n, group in enumerate(groups, start=1):
        key = str(group.tracking_identifier or f"group {n}")
        out.setdefault(key, {}).update(
            {_measurement_name(m): float(m.value) for m in group.get_measurements()}
        )
    return out


def _measurement_name(measurement: Any) -> str:
    """``"Mean"``, or ``"SUVbw (Maximum)"`` when a derivation qualifies the concept."""
    derivation = getattr(measurement, "derivation", None)
    name = str(measurement.name.meaning)
    return f"{name} ({derivation.meaning})" if derivation is not None else name
