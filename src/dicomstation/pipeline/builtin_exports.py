"""The built-in export kinds: SEG, SR, SC, derived series, parametric map, scene bundle.

Each is a builder ``ExportInput -> datasets`` plus one :func:`register_export_kind`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from dicomstation import processing as proc
from dicomstation.errors import ExportError
from dicomstation.export.bundle import (
    Scene,
    SceneSegment,
    SceneSegmentation,
    SceneVolume,
    ViewSettings,
    build_bundle,
)
from dicomstation.export.derived import build_derived_series
from dicomstation.export.pm import build_parametric_map
from dicomstation.export.sc import Overlay, read_png, render_mip, render_slice
from dicomstation.export.sc import build_sc as _build_sc
from dicomstation.export.seg import Segment, SegmentInfo, build_seg_from_labelmap
from dicomstation.export.seg import build_seg as _build_seg
from dicomstation.export.sr import build_sr as _build_sr
from dicomstation.pipeline.exports import ExportInput, ExportSpec, Kind, register_export_kind
from dicomstation.pipeline.segmenters import Segmentation

__all__ = ["AXES", "Derivation", "derive"]

AXES = {"axial": 0, "coronal": 1, "sagittal": 2}


def _segmentation(request: ExportInput) -> Segmentation:
    if request.segmentation is None:
        raise ExportError(f"nothing segmented in series {request.source.series_uid}")
    return request.segmentation


def build_seg(request: ExportInput) -> Sequence[Dataset]:
    """A DICOM SEG of the request's segmentation."""
    found = _segmentation(request)
    numbers = [s.number for s in found.segments]
    if numbers == list(range(1, len(numbers) + 1)):  # the label map as it is: no masks made
        infos = [
            SegmentInfo(
                s.label,
                s.term.category,
                s.term.property_type,
                s.display_color,
                s.algorithm,
                s.algorithm_name,
            )
            for s in found.segments
        ]
        return [build_seg_from_labelmap(request.source, found.labels, infos, request.options)]
    segments = [
        Segment(
            s.label,
            found.mask(s.number),
            s.term.category,
            s.term.property_type,
            s.color,
            s.algorithm,
            s.algorithm_name,
        )
        for s in found.segments
    ]
    return [_build_seg(request.source, segments, request.options)]


def build_sr(request: ExportInput) -> Sequence[Dataset]:
    """A TID 1500 SR of the statistics of the SEG built (or given) in the same export."""
    segs = request.built.get(Kind.SEG)
    if not segs:
        raise ExportError(f"an SR export of {request.source.series_uid} needs its SEG")
    seg = segs[0]
    if not isinstance(seg, hd.seg.Segmentation):
        seg = hd.seg.Segmentation.from_dataset(seg)
    if not request.statistics:
        raise ExportError(f"no statistics to report for series {request.source.series_uid}")
    return [_build_sr(seg, request.source, request.statistics, request.options)]


def _window(value: Any) -> tuple[float, float] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    center, width = (float(v) for v in value)
    return center, width


def build_sc(request: ExportInput) -> Sequence[Dataset]:
    """A Secondary Capture: a PNG (``png``), a MIP (``mip``) or a slice (``index``, ``view``)."""
    params, volume = request.params, request.source.volume
    axis = int(params.get("axis", AXES.get(str(params.get("view", "axial")), 0)))
    window = _window(params.get("window"))
    if params.get("png"):
        rendering = read_png(Path(str(params["png"])))
    elif params.get("mip"):
        rendering = render_mip(volume, axis=axis, window=window)
    else:
        overlays = _overlays(request) if params.get("overlay", True) else []
        index = params.get("index")
        rendering = render_slice(
            volume,
            int(index) if index is not None else None,
            axis=axis,
            window=window,
            overlays=overlays,
        )
    return [_build_sc(rendering, request.source, request.options)]


def _overlays(request: ExportInput) -> list[Overlay]:
    found = request.segmentation
    if found is None:
        return []
    return [Overlay(found.mask(s.number), s.display_color) for s in found.segments]


@dataclass(frozen=True)
class Derivation:
    """A processed volume and how it was made (for a derived series)."""

    volume: hd.Volume
    code: Code
    description: str


def derive(
    volume: hd.Volume,
    *,
    smooth_mm: float | None = None,
    median: int | None = None,
    spacing: Sequence[float] | None = None,
) -> Derivation:
    """Apply exactly one of Gaussian smoothing, median filtering or resampling."""
    if sum(x is not None for x in (smooth_mm, median, spacing)) != 1:
        raise ExportError("give exactly one of smoothing, median or resampling")
    if smooth_mm is not None:
        return Derivation(
            proc.gaussian_smooth(volume, smooth_mm),
            codes.DCM.GaussianBlur,
            f"Gaussian smoothing, sigma {smooth_mm:g} mm",
        )
    if median is not None:
        return Derivation(
            proc.median_smooth(volume, median), codes.DCM.Smoothing, f"Median filter {median}"
        )
    new = tuple(spacing or ())
    text = "Resampled to " + " x ".join(f"{v:g}" for v in new) + " mm"
    return Derivation(proc.resample(volume, new), codes.DCM.SpatialResampling, text)


def _derivation(request: ExportInput) -> Derivation:
    params = request.params
    spacing = params.get("spacing")
    return derive(
        request.source.volume,
        smooth_mm=float(params["smooth_mm"]) if params.get("smooth_mm") is not None else None,
        median=int(params["median"]) if params.get("median") is not None else None,
        spacing=tuple(float(v) for v in spacing) if spacing is not None else None,
    )


def build_derived(request: ExportInput) -> Sequence[Dataset]:
    """A derived image series: ``smooth_mm``, ``median`` or ``spacing`` (exactly one)."""
    made = _derivation(request)
    return build_derived_series(
        request.source,
        made.volume,
        request.options,
        derivation=made.code,
        description=made.description,
    )


def build_pm(request: ExportInput) -> Sequence[Dataset]:
    """A Parametric Map of the processed volume (float values; any source)."""
    made = _derivation(request)
    return [
        build_parametric_map(
            request.source,
            made.volume,
            request.options,
            derivation=made.code,
            description=made.description,
        )
    ]


def scene_of(found: Segmentation, name: str, seg_uid: str | None = None) -> SceneSegmentation:
    """A segmentation as a scene label map."""
    segments = tuple(SceneSegment(s.number, s.label, s.display_color) for s in found.segments)
    labels = found.labels.with_array(np.asarray(found.labels.array).astype(np.uint16))
    return SceneSegmentation(name, labels, segments, seg_uid)


def build_bundle_kind(request: ExportInput) -> Sequence[Dataset]:
    """A scene bundle: the source (and more volumes), its segmentations and view settings."""
    sources = (request.source, *request.volumes)
    volumes = tuple(
        SceneVolume(f"{n}: {s.first.get('SeriesDescription') or 'Volume'}", s.volume, s.series_uid)
        for n, s in enumerate(sources, start=1)
    )
    segmentations = request.scene_segmentations
    if request.segmentation is not None:
        segmentations = (*segmentations, scene_of(request.segmentation, "Segmentation"))
    params = request.params
    index = params.get("index")
    view = ViewSettings(
        layout=str(params.get("layout", "axial")),
        background=volumes[0].name,
        window=_window(params.get("window")),
        slice_index=int(index) if index is not None else None,
        slice_axis=int(params.get("slice_axis", 0)),
        cursor_mm=_point(params.get("cursor_mm")),
    )
    return [build_bundle(Scene(volumes, segmentations, view), request.source, request.options)]


def _point(value: Any) -> tuple[float, float, float] | None:
    """A bundle's cursor (LPS mm) from the export parameters, or None."""
    if value is None:
        return None
    x, y, z = (float(v) for v in value)
    return x, y, z


register_export_kind(ExportSpec(Kind.SEG, build_seg, 200, needs_segmentation=True))
register_export_kind(ExportSpec(Kind.SR, build_sr, 300, requires=(Kind.SEG,)))
register_export_kind(ExportSpec(Kind.SC, build_sc, 400))
register_export_kind(ExportSpec(Kind.DERIVED, build_derived, 100))
register_export_kind(ExportSpec(Kind.PM, build_pm, 150))
register_export_kind(ExportSpec(Kind.BUNDLE, build_bundle_kind, 500))
