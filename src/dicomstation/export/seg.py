"""Segmentations as DICOM SEG (highdicom); reading them back is :mod:`.seg_read`.

A segment carries its label, coded category and type (from SNOMED CT, as
DICOM CID 7150/7151 expect), a display colour and the algorithm that made it.
Non-overlapping segments are encoded from one label map; overlapping ones as
stacked masks. The SEG is BINARY, references every source image, and its
frames are placed by highdicom from the masks' geometry.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.valuerep import DSfloat

from dicomstation.errors import ExportError
from dicomstation.export.common import (
    ExportOptions,
    SourceSeries,
    apply_options,
    new_uid,
    require_frame_of_reference,
    unplaced_image,
)
from dicomstation.export.seg_fast import segmentation_class

__all__ = [
    "PALETTE",
    "Algorithm",
    "Segment",
    "SegmentInfo",
    "build_seg",
    "build_seg_from_labelmap",
]


# Distinct display colours (Slicer's GenericAnatomyColors first entries).
PALETTE = (
    (128, 174, 128),
    (241, 214, 145),
    (177, 122, 101),
    (111, 184, 210),
    (216, 101, 79),
    (221, 130, 101),
    (144, 238, 144),
    (192, 104, 88),
)


class Algorithm(enum.StrEnum):
    """How a segment was made (SegmentAlgorithmType)."""

    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"


@dataclass(frozen=True)
class Segment:
    """One segment to export.

    Parameters
    ----------
    label : str
        SegmentLabel.
    mask : highdicom.Volume
        Boolean mask in the source series' frame of reference.
    category, property_type : pydicom.sr.coding.Code
        Segmented property category and type (SNOMED CT by default: Tissue).
    color : tuple of 3 int or None
        Display colour (RGB 0-255); taken from :data:`PALETTE` when None.
    algorithm : Algorithm
        How it was made.
    algorithm_name : str
        Name of the algorithm (for AUTOMATIC / SEMIAUTOMATIC).
    """

    label: str
    mask: hd.Volume
    category: Code = codes.SCT.Tissue
    property_type: Code = codes.SCT.Tissue
    color: tuple[int, int, int] | None = None
    algorithm: Algorithm = Algorithm.SEMIAUTOMATIC
    algorithm_name: str = "dicomstation threshold"


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment is, without its mask (for :func:`build_seg_from_labelmap`).

    Same fields and defaults as :class:`Segment`, minus ``mask``.
    """

    label: str
    category: Code = codes.SCT.Tissue
    property_type: Code = codes.SCT.Tissue
    color: tuple[int, int, int] | None = None
    algorithm: Algorithm = Algorithm.SEMIAUTOMATIC
    algorithm_name: str = "dicomstation threshold"


def _description(
    number: int, segment: Segment | SegmentInfo, options: ExportOptions
) -> hd.seg.SegmentDescription:
    algorithm = Algorithm(segment.algorithm)
    identification = None
    if algorithm is not Algorithm.MANUAL:
        identification = hd.AlgorithmIdentificationSequence(
            name=segment.algorithm_name[:64],
            family=codes.cid7162.ArtificialIntelligence
            if "model" in segment.algorithm_name.lower()
            else codes.DCM.ImageProcessing,
            version=options.software_versions[:64],
        )
    rgb = segment.color or PALETTE[(number - 1) % len(PALETTE)]
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.label[:64],
        segmented_property_category=segment.category,
        segmented_property_type=segment.property_type,
        algorithm_type=algorithm.value,
        algorithm_identification=identification,
        tracking_uid=new_uid(),
        tracking_id=f"{segment.label[:56]} #{number}",
        display_color=hd.color.CIELabColor.from_rgb(*rgb),
    )


def _labelmap(masks: Sequence[npt.NDArray[np.bool_]], shape: tuple[int, ...]) -> Any:
    """Combine masks into one label map, or return None when two of them overlap.

    Works in slabs of slices so the only large allocation is the label map itself.
    """
    labels = np.zeros(shape, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for start in range(0, shape[0], 16):
        slab = labels[start : start + 16]
        for number, mask in enumerate(masks, start=1):
            part = mask[start : start + 16]
            if np.any(slab[part]):
                return None
            slab[part] = number
    return labels


def _pixel_volume(source: SourceSeries, segments: Sequence[Segment]) -> hd.Volume:
    """One label map when segments do not overlap, else stacked masks (SegmentNumber channel)."""
    first = segments[0].mask
    for number, segment in enumerate(segments, start=1):
        source.check_geometry(segment.mask, f"segment {number} ({segment.label})")
        if not segment.mask.geometry_equal(first) or segment.mask.array.ndim != 3:
            raise ExportError(f"segment {number} ({segment.label}) has another geometry")
    masks = [np.asarray(s.mask.array, dtype=bool) for s in segments]
    labels = _labelmap(masks, first.spatial_shape)
    if labels is not None:
        return first.with_array(labels)
    stacked = np.stack(masks, axis=-1).astype(np.uint8)
    return first.with_array(stacked, channels={"SegmentNumber": list(range(1, len(masks) + 1))})


def build_seg(
    source: SourceSeries,
    segments: Sequence[Segment],
    options: ExportOptions | None = None,
    *,
    workers: int = 0,
) -> hd.seg.Segmentation:
    """Build a DICOM SEG of ``segments`` over ``source``.

    Parameters
    ----------
    source : SourceSeries
        The segmented image series (patient, study and frame of reference come from it).
    segments : sequence of Segment
        Segment n (1-based) is ``segments[n - 1]``.
    options : ExportOptions, optional
        Series description/number, institution tags.
    workers : int
        Frame-encoding worker processes (highdicom); 0 encodes in this process.

    Returns
    -------
    highdicom.seg.Segmentation
        A pydicom Dataset: save it, or import it with :func:`import_into`.

    Raises
    ------
    ExportError
        No segment, empty masks, or masks outside the source's frame of reference.
    """
    options = options or ExportOptions()
    if not segments:
        raise ExportError("a segmentation needs at least one segment")
    pixels = _pixel_volume(source, segments)
    if not np.any(pixels.array):
        raise ExportError(f"every segment is empty; nothing to export for {source.series_uid}")
    descriptions = [_description(n, s, options) for n, s in enumerate(segments, start=1)]
    return _encode(source, pixels, descriptions, options, workers)


def build_seg_from_labelmap(
    source: SourceSeries,
    labels: hd.Volume,
    segments: Sequence[SegmentInfo],
    options: ExportOptions | None = None,
    *,
    workers: int = 0,
) -> hd.seg.Segmentation:
    """Build a DICOM SEG from one integer label map (value n is ``segments[n - 1]``).

    The memory-lean path: no per-segment masks are made. Parameters and
    result as :func:`build_seg`; ``labels`` must be in the source's frame of reference.
    """
    options = options or ExportOptions()
    source.check_geometry(labels, "label map")
    array = np.asarray(labels.array)
    if labels.number_of_channel_dimensions != 0 or array.ndim != 3:
        raise ExportError(f"a label map must be a scalar 3D volume, got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.min(initial=0) < 0:
        raise ExportError("a label map must hold non-negative integers")
    highest = int(array.max(initial=0))
    if highest == 0:
        raise ExportError(f"the label map is empty; nothing to export for {source.series_uid}")
    if highest > len(segments):
        raise ExportError(f"label {highest} has no segment description ({len(segments)} given)")
    if array.dtype not in (np.uint8, np.uint16):
        labels = labels.with_array(array.astype(np.uint8 if highest < 256 else np.uint16))
    descriptions = [_description(n, s, options) for n, s in enumerate(segments, start=1)]
    return _encode(source, labels, descriptions, options, workers)


def _encode(
    source: SourceSeries,
    pixels: hd.Volume,
    descriptions: list[hd.seg.SegmentDescription],
    options: ExportOptions,
    workers: int,
) -> hd.seg.Segmentation:
    image = unplaced_image(source)
    source_images, pixel_array = _sources_and_pixels(source, pixels, image)
    try:
        seg = segmentation_class()(
            source_images=source_images,
            pixel_array=pixel_array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=new_uid(),
            series_number=options.number(source.first, 200),
            sop_instance_uid=new_uid(),
            instance_number=1,
            manufacturer=options.manufacturer,
            manufacturer_model_name=options.manufacturer_model_name,
            software_versions=options.software_versions,
            device_serial_number=options.device_serial_number,
            content_description="Segmentation",
            content_creator_name=options.content_creator_name,
            content_label="SEGMENTATION",
            series_description=options.description("Segmentation"),
            workers=workers,
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ExportError(f"cannot build SEG for series {source.series_uid}: {exc}") from exc
    _complete_pixel_measures(seg, pixels)
    if image is not None and "PatientOrientation" not in seg:
        # Type 2C without a plane orientation: the image's own (empty when it has none)
        seg.PatientOrientation = source.first.get("PatientOrientation") or ""
    apply_options(seg, options)
    return seg


def _sources_and_pixels(
    source: SourceSeries, pixels: hd.Volume, image: Dataset | None
) -> tuple[list[Dataset], hd.Volume | npt.NDArray[Any]]:
    """highdicom's ``source_images`` and ``pixel_array`` (``image``: a projection image)."""
    if image is not None:  # a projection image: the mask must be on its own pixel grid
        on_grid = pixels.spatial_shape == source.volume.spatial_shape and np.allclose(
            pixels.affine, source.volume.affine
        )
        if not on_grid:
            raise ExportError(
                f"series {source.series_uid} has no patient geometry: a segmentation of it "
                "must be on the image's own pixel grid"
            )
        return [image], np.asarray(pixels.array)
    # On the source grid, pass a plain array with the sources in slice order (highdicom's
    # fastest path); otherwise let highdicom place the frames from the volume's geometry.
    require_frame_of_reference(source, "a segmentation")
    ordered = source.datasets_in_order(pixels)
    return ordered or list(source.datasets), pixels if ordered is None else pixels.array


def _complete_pixel_measures(seg: hd.seg.Segmentation, pixels: hd.Volume) -> None:
    """Add the Slice Thickness (1C) highdicom leaves out when the sources have none."""
    for group in seg.SharedFunctionalGroupsSequence:
        for measures in group.get("PixelMeasuresSequence", []):
            if "SliceThickness" not in measures:
                measures.SliceThickness = DSfloat(
                    float(pixels.spacing_between_slices), auto_format=True
                )
