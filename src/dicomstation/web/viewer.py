"""Loaded volumes for the viewer: slices/MIP as PNG, segmentation, export to DICOM.

Multi-frame cine and 4D series keep every time point (``frames``), played at the
rate the file gives (:mod:`dicomstation.web.viewer_cine`); colour series are shown
as stored RGB (:mod:`dicomstation.web.viewer_colour`); RTSTRUCTs of the study are
rasterised on the viewed volume (:mod:`dicomstation.web.viewer_rt`).

Volumes are shown in a fixed patient orientation (axis 0 inferior->superior,
axis 1 anterior->posterior, axis 2 right->left), so axial, coronal and sagittal
views look the way radiologists expect whatever the acquisition plane. Masks
are computed on the volume as loaded (its own geometry), which is what the SEG
export references, and reoriented only for display.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image

from dicomstation.database import Database
from dicomstation.dicomjson import first_value
from dicomstation.errors import NotFoundError, ProcessingError
from dicomstation.export import ExportOptions, Overlay, SourceSeries, render_mip, render_slice
from dicomstation.export.common import projection_pixel_area
from dicomstation.pipeline import (
    ExportInput,
    Kind,
    Segmentation,
    SegmentDescription,
    export_kind,
    export_results,
    make_segmenter,
)
from dicomstation.pipeline.actions import content_seed
from dicomstation.volumes import LoadedVolume, load_series
from dicomstation.web.viewer_cine import FrameTiming, frame_timing
from dicomstation.web.viewer_colour import COLOUR_WINDOW, is_colour, render_colour
from dicomstation.web.viewer_rt import RtStructs, image_series_for
from dicomstation.web.viewer_windows import default_window

__all__ = ["PRESETS", "Viewer", "ViewerVolume"]

DISPLAY = "SPL"  # axis 0 -> superior, 1 -> posterior, 2 -> left
AXES = {"axial": 0, "coronal": 1, "sagittal": 2}
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "abdomen": (40.0, 400.0),
    "mediastinum": (50.0, 350.0),
}
OVERLAY = (255, 64, 64)
MAX_VOLUMES = 4  # volumes kept in memory per UI; older ones must be loaded again


@dataclass
class ViewerVolume:
    """A loaded series, its display copy, and the current segmentation."""

    id: str
    loaded: LoadedVolume
    display: hd.Volume
    mask: hd.Volume | None = None
    mask_display: hd.Volume | None = None
    method: str = ""
    body_part: str = ""  # Body Part Examined, for the default CT window
    frames: tuple[hd.Volume, ...] = ()  # every time point, display orientation (cine, 4D)
    timing: FrameTiming | None = None

    @property
    def colour(self) -> bool:
        """Whether the volume is RGB (shown as stored, no window)."""
        return is_colour(self.display)

    def frame(self, index: int | None) -> hd.Volume:
        """The display volume of time point ``index`` (the first when None)."""
        if index is None or not self.frames:
            return self.display
        if not 0 <= index < len(self.frames):
            raise ProcessingError(f"frame {index} is outside 0..{len(self.frames) - 1}")
        return self.frames[index]

    def info(self) -> dict[str, Any]:
        """Shape, spacing and metadata the UI needs to build its controls."""
        shape = self.display.spatial_shape
        window = (
            dict(COLOUR_WINDOW)
            if self.colour
            else default_window(self.loaded.modality, self.display.array, self.body_part).as_json()
        )
        return {
            "id": self.id,
            "series_uid": self.loaded.series_instance_uid,
            "study_uid": self.loaded.study_instance_uid,
            "modality": self.loaded.modality,
            "shape": {"axial": shape[0], "coronal": shape[1], "sagittal": shape[2]},
            "spacing": [round(float(s), 3) for s in self.display.spacing],
            "warnings": list(self.loaded.warnings),
            "has_mask": self.mask is not None,
            "range": [float(np.min(self.display.array)), float(np.max(self.display.array))],
            "default_window": window,
            "colour": self.colour,
            "geometry": bool(self.loaded.slice_positions),  # False: no patient orientation
            "frames": max(len(self.frames), 1),
            "cine": self.timing.as_json() if self.timing and len(self.frames) > 1 else None,
        }


@dataclass
class Viewer:
    """Every volume loaded in this session, by id."""

    db: Database
    volumes: dict[str, ViewerVolume] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rt: RtStructs = field(init=False)

    def __post_init__(self) -> None:
        self.rt = RtStructs(self.db)

    def image_series(self, series_uid: str) -> str:
        """The series to load for ``series_uid`` (an RTSTRUCT opens its image series)."""
        return image_series_for(self.db, series_uid)

    def load(self, series_uid: str) -> ViewerVolume:
        """Load a series from the local database (LoadError when it is not a volume)."""
        series_uid = self.image_series(series_uid)
        return self.add(load_series(self.db.series_files(series_uid)), series_uid)

    def add(self, loaded: LoadedVolume, series_uid: str) -> ViewerVolume:
        """Keep a loaded volume (one loadable of a series chosen by the user) for viewing."""
        frames = tuple(v.to_patient_orientation(DISPLAY) for v in loaded.time_points)
        display = frames[0] if frames else loaded.volume.to_patient_orientation(DISPLAY)
        first = _source_header(self.db, series_uid, loaded)
        body_part = first_value(first, "BodyPartExamined") if first else ""
        timing = frame_timing(first, len(frames), loaded.time_values, loaded.time_attribute)
        item = ViewerVolume(
            uuid.uuid4().hex[:12],
            loaded,
            display,
            body_part=body_part,
            frames=frames,
            timing=timing,
        )
        with self.lock:
            self.volumes[item.id] = item
            while len(self.volumes) > MAX_VOLUMES:  # oldest first (dicts keep insertion order)
                del self.volumes[next(iter(self.volumes))]
        return item

    def get(self, volume_id: str) -> ViewerVolume:
        """A loaded volume. Raises NotFoundError."""
        with self.lock:
            found = self.volumes.get(volume_id)
        if found is None:
            raise NotFoundError(f"no loaded volume {volume_id!r}; load the series again")
        return found

    def render(
        self,
        volume_id: str,
        view: str,
        index: int | None,
        window: tuple[float, float] | None,
        mip: bool = False,
        overlay: bool = True,
        frame: int | None = None,
        layers: Sequence[Overlay] = (),
    ) -> bytes:
        """A PNG of one slice (or a MIP) in the chosen view, with the mask overlaid.

        ``frame`` picks a time point of a cine or 4D series; ``layers`` are more masks
        on the display grid (SEG segments, RT contours) drawn over the slice.
        """
        item = self.get(volume_id)
        axis = AXES.get(view)
        if axis is None:
            raise ProcessingError(f"unknown view {view!r}: use axial, coronal or sagittal")
        shown = item.frame(frame)
        overlays = list(layers)
        if overlay and item.mask_display is not None and not mip:
            overlays.insert(0, Overlay(item.mask_display, OVERLAY, 0.45))
        if item.colour:  # stored RGB, no window (viewer_colour)
            rendering = render_colour(shown, index, axis=axis, mip=mip, overlays=overlays)
        elif mip:
            rendering = render_mip(shown, axis=axis, window=window)
        else:
            rendering = render_slice(shown, index, axis=axis, window=window, overlays=overlays)
        return _png(rendering.pixels, shown.spacing, axis)

    def segment(
        self,
        volume_id: str,
        method: str,
        low: float,
        high: float,
        seeds: list[tuple[float, float, float]],
    ) -> dict[str, Any]:
        """Threshold, or grow from seeds given as display (axial, row, column) indices."""
        item = self.get(volume_id)
        volume = item.loaded.volume
        if item.colour:
            raise ProcessingError("colour images are not segmented: load a greyscale series")
        if method not in ("threshold", "region_grow"):
            raise ProcessingError(f"unknown method {method!r}: threshold or region_grow")
        params: dict[str, Any] = {"threshold": [low, high]}
        if method == "region_grow":
            if not seeds:
                raise ProcessingError("region growing needs at least one seed")
            points = item.display.map_indices_to_reference(np.array(seeds, dtype=float))
            params["seeds_mm"] = [[float(v) for v in p] for p in points]
        found = make_segmenter(method, params).segment(volume)  # the pipeline's segmenters
        return self.set_mask(volume_id, np.asarray(found.labels.array) > 0, method)

    def set_mask(self, volume_id: str, mask: Any, method: str) -> dict[str, Any]:
        """Make ``mask`` (on the loaded volume's own grid) the current segmentation."""
        item = self.get(volume_id)
        volume = item.loaded.volume
        if tuple(np.shape(mask)) != tuple(volume.spatial_shape):
            raise ProcessingError(f"mask shape {np.shape(mask)} is not the volume's grid")
        made = volume.with_array(np.asarray(mask, dtype=bool))
        item.mask, item.method = made, method
        item.mask_display = made.to_patient_orientation(DISPLAY)
        voxels = int(np.count_nonzero(made.array))
        result: dict[str, Any] = {
            "voxels": voxels,
            "volume_ml": round(voxels * float(volume.voxel_volume) / 1000, 3),
        }
        pixel = projection_pixel_area(item.loaded)  # a CR/DX...: an area, not a volume
        if pixel is not None:
            result["area_mm2"] = round(voxels * pixel, 3)
        return result

    def export(
        self,
        volume_id: str,
        kind: str,
        options: ExportOptions,
        *,
        view: str = "axial",
        index: int | None = None,
        window: tuple[float, float] | None = None,
    ) -> list[str]:
        """Export SEG, SR (statistics, with its SEG) or SC (screenshot); new series UIDs.

        Goes through :func:`dicomstation.pipeline.export_results` like every export:
        series numbers do not collide in the study, and exporting the same mask
        with the same options again gives back the records already made.
        """
        item = self.get(volume_id)
        spec = export_kind(kind)
        kinds = [Kind.SEG, Kind.SR] if spec.name == Kind.SR else [spec.name]
        segmentation = None
        if item.mask is not None:
            description = SegmentDescription(
                1, "Segment 1", algorithm_name=f"dicomstation {item.method}"
            )
            segmentation = Segmentation.from_mask(item.mask, description)
        params = {"axis": AXES.get(view, 0), "index": index, "window": window, "overlay": False}
        request = ExportInput(SourceSeries.from_loaded(item.loaded), options, segmentation, params)
        mask = np.packbits(np.asarray(item.mask.array, dtype=bool)).tobytes() if item.mask else b""
        shown = params if spec.name == Kind.SC else None  # the view matters for a screenshot only
        seed = content_seed("viewer", item.loaded.series_instance_uid, options, shown, mask)
        results = export_results(self.db, request, kinds, uid_seed=seed)
        return [r.series_uid for r in results]


def _source_header(db: Database, series_uid: str, loaded: LoadedVolume) -> Mapping[str, Any] | None:
    """The cached header of the loaded volume's first source instance (one header, not the
    series': a 200-file series' headers take seconds to read)."""
    for uid in loaded.sop_instance_uids[:1]:
        try:
            found = db.headers_of(uid)
        except NotFoundError:
            break
        if found:
            return found[0]
    headers = db.headers_of(series_uid)
    return headers[0] if headers else None


def _png(pixels: Any, spacing: tuple[float, float, float], axis: int) -> bytes:
    """PNG bytes; reformats are flipped (superior up) and stretched to true aspect."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis]
    if axis != 0:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    ratio = spacing[rows_axis] / spacing[cols_axis]
    if abs(ratio - 1) > 0.01:
        image = image.resize(
            (image.width, max(1, round(image.height * ratio))), Image.Resampling.BILINEAR
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
