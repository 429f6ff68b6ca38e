"""Loaded volumes for the viewer: slices/MIP as PNG, segmentation, export to DICOM.

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
from dataclasses import dataclass, field
from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image

from dicomstation.database import Database
from dicomstation.dicomjson import first_value
from dicomstation.errors import NotFoundError, ProcessingError
from dicomstation.export import ExportOptions, Overlay, SourceSeries, render_mip, render_slice
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

    def info(self) -> dict[str, Any]:
        """Shape, spacing and metadata the UI needs to build its controls."""
        shape = self.display.spatial_shape
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
            "default_window": default_window(
                self.loaded.modality, self.display.array, self.body_part
            ).as_json(),
        }


@dataclass
class Viewer:
    """Every volume loaded in this session, by id."""

    db: Database
    volumes: dict[str, ViewerVolume] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, series_uid: str) -> ViewerVolume:
        """Load a series from the local database (LoadError when it is not a volume)."""
        return self.add(load_series(self.db.series_files(series_uid)), series_uid)

    def add(self, loaded: LoadedVolume, series_uid: str) -> ViewerVolume:
        """Keep a loaded volume (one loadable of a series chosen by the user) for viewing."""
        if loaded.volume.number_of_channel_dimensions != 0:
            raise ProcessingError(f"series {series_uid} is colour; the viewer shows scalar volumes")
        display = loaded.volume.to_patient_orientation(DISPLAY)
        headers = self.db.headers_of(series_uid)
        body_part = first_value(headers[0], "BodyPartExamined") if headers else ""
        item = ViewerVolume(uuid.uuid4().hex[:12], loaded, display, body_part=body_part)
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
    ) -> bytes:
        """A PNG of one slice (or a MIP) in the chosen view, with the mask overlaid."""
        item = self.get(volume_id)
        axis = AXES.get(view)
        if axis is None:
            raise ProcessingError(f"unknown view {view!r}: use axial, coronal or sagittal")
        if mip:
            rendering = render_mip(item.display, axis=axis, window=window)
        else:
            overlays = (
                [Overlay(item.mask_display, OVERLAY, 0.45)]
                if overlay and item.mask_display is not None
                else []
            )
            rendering = render_slice(
                item.display, index, axis=axis, window=window, overlays=overlays
            )
        return _png(rendering.pixels, item.display.spacing, axis)

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
        if method not in ("threshold", "region_grow"):
            raise ProcessingError(f"unknown method {method!r}: threshold or region_grow")
        params: dict[str, Any] = {"threshold": [low, high]}
        if method == "region_grow":
            if not seeds:
                raise ProcessingError("region growing needs at least one seed")
            points = item.display.map_indices_to_reference(np.array(seeds, dtype=float))
            params["seeds_mm"] = [[float(v) for v in p] for p in points]
        found = make_segmenter(method, params).segment(volume)  # the pipeline's segmenters
        mask = volume.with_array(np.asarray(found.labels.array) > 0)
        item.mask, item.method = mask, method
        item.mask_display = mask.to_patient_orientation(DISPLAY)
        voxels = int(np.count_nonzero(mask.array))
        return {"voxels": voxels, "volume_ml": round(voxels * float(volume.voxel_volume) / 1000, 3)}

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
