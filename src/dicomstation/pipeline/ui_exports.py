"""Viewer exports as pipelines: what the web UI's Export button runs, as a ledger job.

An export from the workstation viewer is the pipeline ``load -> segment -> export``
for one work item (the viewed series): the segment step repeats what the viewer
did (the same registered segmenter and parameters, or the label map of a scene
bundle the viewer reopened), so the job is fully described by its definition.
It is therefore recorded in the job ledger like any other job, survives a restart
of the UI, can be resumed, and, its output UIDs being derived from the definition,
exporting the same thing again gives back the objects already made.

The scene step (kind ``scene_segmentation``) is registered here: the label map of
segmentation ``index`` of the scene bundle ``bundle_uid`` in the local database.
How each way the viewer can make a mask is replayed is a registration
(:func:`register_viewer_segmentation`): ``scene`` (a reopened bundle) and
``rtstruct_labelmap`` (an RTSTRUCT loaded as a label map,
:mod:`dicomstation.pipeline.rt_labelmap`) build their own step; any other name is a
registered segmenter run by :class:`SegmentStep`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pydicom

from dicomstation.database import Database
from dicomstation.errors import ExportError, NotFoundError
from dicomstation.export.bundle import Scene, load_scene
from dicomstation.export.common import ExportOptions, SourceSeries
from dicomstation.pipeline.definition import Pipeline, RunSettings
from dicomstation.pipeline.exports import ordered_kinds
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.rt_labelmap import RtLabelmapStep, rt_labelmap_step
from dicomstation.pipeline.segmenters import Segmentation, SegmentDescription
from dicomstation.pipeline.sources import ItemsSource
from dicomstation.pipeline.step import Step, StepContext, register_step
from dicomstation.pipeline.steps import ExportStep, LoadStep, SegmentStep

__all__ = [
    "SceneSegmentationStep",
    "ViewerExport",
    "export_pipeline",
    "read_scene",
    "register_viewer_segmentation",
    "scene_segmentation",
]


def read_scene(db: Database, bundle_uid: str) -> Scene:
    """The scene of the bundle instance ``bundle_uid`` of ``db`` (NotFoundError / ExportError)."""
    files = db.files_of(bundle_uid)
    if not files:
        raise NotFoundError(f"no scene bundle {bundle_uid} in the local database")
    return load_scene(pydicom.dcmread(Path(files[0])))


def scene_segmentation(scene: Scene, index: int, where: str) -> Segmentation:
    """Segmentation ``index`` of a scene as a pipeline :class:`Segmentation`."""
    if not 0 <= index < len(scene.segmentations):
        raise ExportError(f"{where} has no segmentation {index + 1}")
    found = scene.segmentations[index]
    labels = found.labelmap.with_array(np.asarray(found.labelmap.array).astype(np.uint16))
    segments = tuple(
        SegmentDescription(s.number, s.label, color=s.color, algorithm_name="scene bundle")
        for s in found.segments
    )
    return Segmentation(labels, segments)


@dataclass(frozen=True)
class SceneSegmentationStep:
    """Segment each loaded series with the label map a scene bundle stores for it."""

    kind: ClassVar[str] = "scene_segmentation"
    memory_only: ClassVar[bool] = True
    name: str
    bundle_uid: str
    index: int = 0

    def run(self, ctx: StepContext) -> tuple[str, ...]:
        """Read the label map; outputs are the series it is attached to."""
        where = f"scene bundle {self.bundle_uid}"
        found = scene_segmentation(read_scene(ctx.db, self.bundle_uid), self.index, where)

        def on_grid(uid: str, source: SourceSeries) -> Segmentation:
            if tuple(source.volume.spatial_shape) != tuple(found.labels.spatial_shape):
                raise ExportError(f"{where}: its label map is not on the grid of series {uid}")
            return Segmentation(
                source.volume.with_array(np.asarray(found.labels.array)), found.segments
            )

        return ctx.segment_each(self.name, on_grid)

    def restore(self, ctx: StepContext, outputs: tuple[str, ...]) -> None:
        """Never called: the label map is read again whenever a later step needs it."""

    def to_dict(self) -> dict[str, Any]:
        """Pipeline-file table."""
        return {
            "kind": self.kind,
            "name": self.name,
            "bundle_uid": self.bundle_uid,
            "index": self.index,
        }


def _scene_step(name: str, table: Mapping[str, Any]) -> SceneSegmentationStep:
    return SceneSegmentationStep(name, str(table["bundle_uid"]), int(table.get("index", 0)))


register_step(SceneSegmentationStep.kind, _scene_step)

#: How a viewer mask made by something other than a segmenter is replayed: method -> step.
_VIEWER_SEGMENTATIONS: dict[str, Callable[[str, Mapping[str, Any]], Step]] = {}


def register_viewer_segmentation(
    method: str, factory: Callable[[str, Mapping[str, Any]], Step]
) -> None:
    """Make ``factory(step_name, params)`` the segment step replaying the viewer's ``method``."""
    _VIEWER_SEGMENTATIONS[method] = factory


register_viewer_segmentation("scene", _scene_step)
register_viewer_segmentation(RtLabelmapStep.kind, rt_labelmap_step)


@dataclass(frozen=True)
class ViewerExport:
    """What the viewer exports: the series, how its mask was made, what to write.

    Parameters
    ----------
    study_uid, series_uid : str
        The viewed series (in the local database).
    kinds : sequence of str
        Export kinds (``seg``, ``sr``, ``sc``, ``derived``, ``bundle``...).
    options : ExportOptions
        Series description, number, institution, creator.
    segmenter : str or None
        The registered segmenter the viewer ran (``threshold``, ``region_grow``),
        ``scene`` for a reopened bundle's label map, ``rtstruct_labelmap`` for an
        RTSTRUCT loaded as a label map, None when nothing is segmented.
    segment_params : mapping
        The segmenter's parameters (thresholds, seeds in mm), or for ``scene``
        ``bundle_uid`` and ``index``, for ``rtstruct_labelmap`` ``rtstruct_uid``
        (SOPInstanceUID) and ``rois`` (ROI numbers).
    params : mapping of kind to mapping
        Per-kind export parameters (the view of a screenshot, a derived series'
        filter, a bundle's view settings).
    """

    study_uid: str
    series_uid: str
    kinds: Sequence[str]
    options: ExportOptions = field(default_factory=ExportOptions)
    segmenter: str | None = None
    segment_params: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        """ExportError now (not in the job) when a kind needs a segmentation and there is none."""
        for spec in ordered_kinds(list(self.kinds)):
            if spec.needs_segmentation and self.segmenter is None:
                raise ExportError(
                    f"a {spec.name.upper()} export needs a segmentation; segment first"
                )

    def steps(self) -> tuple[Step, ...]:
        """load (the series), segment (as the viewer did), export."""
        steps: list[Step] = [LoadStep("load")]
        replay = _VIEWER_SEGMENTATIONS.get(self.segmenter or "")
        if replay is not None:
            steps.append(replay("segment", self.segment_params))
        elif self.segmenter is not None:
            steps.append(SegmentStep("segment", self.segmenter, dict(self.segment_params)))
        kinds = tuple(str(k) for k in self.kinds)
        steps.append(ExportStep("export", kinds, self.options, dict(self.params)))
        return tuple(steps)


def export_pipeline(export: ViewerExport) -> Pipeline:
    """The ledger pipeline of a viewer export (same export, same job, same output UIDs)."""
    export.check()
    kinds = "+".join(spec.name.upper() for spec in ordered_kinds(list(export.kinds)))
    item = WorkItem(export.study_uid, (export.series_uid,))
    return Pipeline(
        f"export {kinds} of series {export.series_uid}",
        ItemsSource((item,)),
        export.steps(),
        RunSettings(concurrency=1, attempts=1),
    )
