"""Screenshots as Secondary Capture images (highdicom ``SCImage``).

A screenshot is a rendered slice or maximum intensity projection of a volume
(with optional coloured segment overlays), or any PNG. It is stored in the
source's study as an RGB Secondary Capture that references its source images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian
from pydicom.valuerep import DSfloat

from dicomstation.errors import ExportError
from dicomstation.export.common import ExportOptions, SourceSeries, apply_options, new_uid
from dicomstation.export.iod import inherit_body_part

__all__ = [
    "Overlay",
    "Rendering",
    "blend",
    "build_sc",
    "draw_overlays",
    "read_png",
    "render_mip",
    "render_slice",
]

RGB8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Overlay:
    """A mask drawn over a rendering in ``color`` with ``opacity`` (0-1)."""

    mask: hd.Volume
    color: tuple[int, int, int]
    opacity: float = 0.5


@dataclass(frozen=True)
class Rendering:
    """An RGB picture of a volume and where it came from.

    Attributes
    ----------
    pixels : numpy.ndarray
        ``(rows, columns, 3)`` uint8.
    orientation : tuple of 2 str
        PatientOrientation (row direction, column direction), ``("", "")`` if unknown.
    pixel_spacing : tuple of 2 float or None
        Spacing between rows and between columns, in mm.
    slice_index : int or None
        The rendered slice along ``axis``, or None for a projection or a PNG.
    axis : int
        Array axis the view looks along (0 slices, 1 rows, 2 columns).
    """

    pixels: RGB8
    orientation: tuple[str, str] = ("", "")
    pixel_spacing: tuple[float, float] | None = None
    slice_index: int | None = None
    axis: int = 0


def _window(values: npt.NDArray[np.floating], window: tuple[float, float] | None) -> RGB8:
    if window is None:
        low, high = np.percentile(values, (0.5, 99.5))
    else:
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    scaled = (values - low) / max(float(high - low), 1e-9)
    grey = (np.clip(scaled, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.repeat(grey[..., np.newaxis], 3, axis=-1)


def _plane(array: npt.NDArray[Any], axis: int, index: int) -> npt.NDArray[Any]:
    plane: npt.NDArray[Any] = np.take(array, index, axis=axis)
    return plane


def _view(volume: hd.Volume, axis: int) -> tuple[tuple[str, str], tuple[float, float]]:
    if axis not in (0, 1, 2):
        raise ExportError(f"axis must be 0, 1 or 2, got {axis}")
    letters = [o.value for o in volume.get_closest_patient_orientation()]
    rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis]
    spacing = volume.spacing
    return (letters[cols_axis], letters[rows_axis]), (spacing[rows_axis], spacing[cols_axis])


def render_slice(
    volume: hd.Volume,
    index: int | None = None,
    *,
    axis: int = 0,
    window: tuple[float, float] | None = None,
    overlays: Sequence[Overlay] = (),
) -> Rendering:
    """Render one slice of ``volume`` (greyscale window, optional coloured overlays).

    Parameters
    ----------
    volume : highdicom.Volume
        Scalar volume.
    index : int, optional
        Slice index along ``axis``; the middle slice by default.
    axis : int
        0 renders ``array[k]`` (the acquisition plane); 1 and 2 are reformats.
    window : (center, width), optional
        Display window; the 0.5-99.5 percentile range by default.
    overlays : sequence of Overlay
        Masks with the volume's geometry, alpha-blended in order.
    """
    orientation, spacing = _view(volume, axis)
    size = volume.spatial_shape[axis]
    index = size // 2 if index is None else index
    if not 0 <= index < size:
        raise ExportError(f"slice {index} is outside 0..{size - 1} along axis {axis}")
    grey = _window(_plane(volume.array, axis, index).astype(np.float64), window)
    for overlay in overlays:
        if not overlay.mask.geometry_equal(volume):
            raise ExportError("overlay mask does not have the rendered volume's geometry")
    return draw_overlays(Rendering(grey, orientation, spacing, index, axis), overlays)


def draw_overlays(rendering: Rendering, overlays: Sequence[Overlay]) -> Rendering:
    """Alpha-blend mask overlays (volumes on the rendered grid) onto a slice rendering."""
    if rendering.slice_index is None:
        raise ExportError("overlays can only be drawn on a slice rendering")
    rgb = rendering.pixels.astype(np.float64)
    for overlay in overlays:
        hit = _plane(np.asarray(overlay.mask.array), rendering.axis, rendering.slice_index)
        hit = hit.astype(bool)
        rgb[hit] = (1 - overlay.opacity) * rgb[hit] + overlay.opacity * np.array(overlay.color)
    return replace(rendering, pixels=np.clip(rgb.round(), 0, 255).astype(np.uint8))


def blend(below: Rendering, above: Rendering, opacity: float) -> Rendering:
    """``above`` drawn over ``below`` at ``opacity`` (0-1); geometry from ``below``."""
    if below.pixels.shape != above.pixels.shape:
        raise ExportError(f"cannot blend {above.pixels.shape} over {below.pixels.shape}")
    alpha = min(max(opacity, 0.0), 1.0)
    rgb = (1 - alpha) * below.pixels.astype(np.float64) + alpha * above.pixels
    return replace(below, pixels=np.clip(rgb.round(), 0, 255).astype(np.uint8))


def render_mip(
    volume: hd.Volume, *, axis: int = 0, window: tuple[float, float] | None = None
) -> Rendering:
    """Render a maximum intensity projection of ``volume`` along ``axis``."""
    orientation, spacing = _view(volume, axis)
    projection = np.max(np.asarray(volume.array, dtype=np.float64), axis=axis)
    return Rendering(_window(projection, window), orientation, spacing, None, axis)


def read_png(path: Path | str) -> Rendering:
    """Read a PNG (or any image Pillow reads) as an RGB rendering of unknown orientation."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise ExportError(f"{path}: not a readable image: {exc}") from exc
    return Rendering(np.ascontiguousarray(pixels))


def _sources(source: SourceSeries, rendering: Rendering) -> list[Dataset]:
    """Source images of a rendering: its own slice for an acquisition-plane view, else all."""
    if rendering.axis == 0 and rendering.slice_index is not None:
        position = source.volume.get_plane_positions()[rendering.slice_index][0]
        key = tuple(round(float(v), 2) for v in position.ImagePositionPatient)
        for ds in source.datasets:
            ipp = ds.get("ImagePositionPatient")
            if ipp is not None and tuple(round(float(v), 2) for v in ipp) == key:
                return [ds]
    return list(source.datasets)


def build_sc(
    rendering: Rendering,
    source: SourceSeries,
    options: ExportOptions | None = None,
    *,
    description: str = "Screenshot",
) -> hd.sc.SCImage:
    """Build an RGB Secondary Capture of ``rendering`` in the study of ``source``.

    Returns
    -------
    highdicom.sc.SCImage
        References the rendered source images (Source Image Sequence).
    """
    options = options or ExportOptions()
    pixels = np.ascontiguousarray(rendering.pixels, dtype=np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise ExportError(f"a screenshot must be (rows, columns, 3) RGB, got {pixels.shape}")
    known = all(rendering.orientation)
    try:
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source.first,
            pixel_array=pixels,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=new_uid(),
            series_number=options.number(source.first, 400),
            sop_instance_uid=new_uid(),
            instance_number=1,
            manufacturer=options.manufacturer,
            patient_orientation=rendering.orientation if known else ("L", "P"),
            series_description=options.description(description),
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"cannot build Secondary Capture for {source.series_uid}: {exc}") from exc
    if not known:
        del sc.PatientOrientation
        sc.add_new("PatientOrientation", "CS", None)  # type 2: unknown for a plain picture
    inherit_body_part(sc, source.first)
    if rendering.pixel_spacing is not None:
        sc.NominalScannedPixelSpacing = [
            DSfloat(float(v), auto_format=True) for v in rendering.pixel_spacing
        ]
    sc.DerivationDescription = description[:1024]
    sc.SourceImageSequence = [_reference(ds) for ds in _sources(source, rendering)]
    apply_options(sc, options)
    return sc


def _reference(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.PurposeOfReferenceCodeSequence = [
        hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    ]
    return item
