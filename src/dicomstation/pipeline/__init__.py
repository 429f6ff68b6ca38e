"""Cohort pipelines: one workflow layer for the CLI, the web UI and Python.

A :class:`Pipeline` is a source (a query on a server, a manifest file, a local
selection) plus steps (fetch, load, segment, export, send, clean-up), run for
each work item (a study, or series of it). Runs are recorded per item and step
in a :class:`Ledger` (SQLite, WAL), so a rerun resumes; output UIDs derive from
the input UIDs and the pipeline definition, so a rerun makes nothing twice::

    from dicomstation.pipeline import Pipeline, RunOptions
    report = Pipeline.from_file("bone.toml").run(RunOptions(database=Path("db"), servers=...))

Plug-in points: :func:`register_segmenter`, :func:`register_export_kind`,
:func:`register_step`, and the :class:`Executor` protocol (in-process threads by
default). See ``docs/pipelines.md`` for the file format.

The names are imported on first use (module ``__getattr__``): ``import
dicomstation.pipeline.ledger`` (``dicomstation jobs list``) does not import the steps,
segmenters and exports, nor numpy, pydicom and highdicom with them. Every registry loads
its built-ins itself (``step_kinds``, ``segmenter_names``, ``export_kinds``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dicomstation.pipeline.definition import Pipeline, RunSettings
    from dicomstation.pipeline.driver import (
        LEDGER_NAME,
        RunOptions,
        RunReport,
        RunStatus,
        list_items,
        run_pipeline,
    )
    from dicomstation.pipeline.executor import Executor, InProcessExecutor
    from dicomstation.pipeline.exports import (
        UID_ROOT,
        Exported,
        ExportInput,
        ExportSpec,
        Kind,
        export_kind,
        export_kinds,
        export_results,
        register_export_kind,
    )
    from dicomstation.pipeline.ledger import ItemStatus, JobSummary, Ledger
    from dicomstation.pipeline.model import (
        StepEvent,
        StepRecord,
        StepState,
        TaskManifest,
        TaskResult,
        WorkItem,
    )
    from dicomstation.pipeline.segmenters import (
        Segmentation,
        SegmentDescription,
        Segmenter,
        ThresholdSegmenter,
        make_segmenter,
        register_segmenter,
    )
    from dicomstation.pipeline.selection import SeriesSelector
    from dicomstation.pipeline.sources import (
        ItemsSource,
        LocalSource,
        ManifestSource,
        QuerySource,
        Source,
    )
    from dicomstation.pipeline.step import Step, StepContext, register_step
    from dicomstation.pipeline.steps import (
        CleanupStep,
        ExportStep,
        FetchStep,
        LoadStep,
        SegmentStep,
        SendStep,
    )
    from dicomstation.pipeline.task import run_task

#: public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "LEDGER_NAME": "ledger",
    "UID_ROOT": "exports",
    "CleanupStep": "steps",
    "Executor": "executor",
    "ExportInput": "exports",
    "ExportSpec": "exports",
    "ExportStep": "steps",
    "Exported": "exports",
    "FetchStep": "steps",
    "InProcessExecutor": "executor",
    "ItemStatus": "ledger",
    "ItemsSource": "sources",
    "JobSummary": "ledger",
    "Kind": "exports",
    "Ledger": "ledger",
    "LoadStep": "steps",
    "LocalSource": "sources",
    "ManifestSource": "sources",
    "Pipeline": "definition",
    "QuerySource": "sources",
    "RunOptions": "driver",
    "RunReport": "driver",
    "RunSettings": "definition",
    "RunStatus": "driver",
    "SegmentDescription": "segmenters",
    "SegmentStep": "steps",
    "Segmentation": "segmenters",
    "Segmenter": "segmenters",
    "SendStep": "steps",
    "SeriesSelector": "selection",
    "Source": "sources",
    "Step": "step",
    "StepContext": "step",
    "StepEvent": "model",
    "StepRecord": "model",
    "StepState": "model",
    "TaskManifest": "model",
    "TaskResult": "model",
    "ThresholdSegmenter": "segmenters",
    "WorkItem": "model",
    "export_kind": "exports",
    "export_kinds": "exports",
    "export_results": "exports",
    "list_items": "driver",
    "make_segmenter": "segmenters",
    "register_export_kind": "exports",
    "register_segmenter": "segmenters",
    "register_step": "step",
    "run_pipeline": "driver",
    "run_task": "task",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


__all__ = [
    "LEDGER_NAME",
    "UID_ROOT",
    "CleanupStep",
    "Executor",
    "ExportInput",
    "ExportSpec",
    "ExportStep",
    "Exported",
    "FetchStep",
    "InProcessExecutor",
    "ItemStatus",
    "ItemsSource",
    "JobSummary",
    "Kind",
    "Ledger",
    "LoadStep",
    "LocalSource",
    "ManifestSource",
    "Pipeline",
    "QuerySource",
    "RunOptions",
    "RunReport",
    "RunSettings",
    "RunStatus",
    "SegmentDescription",
    "SegmentStep",
    "Segmentation",
    "Segmenter",
    "SendStep",
    "SeriesSelector",
    "Source",
    "Step",
    "StepContext",
    "StepEvent",
    "StepRecord",
    "StepState",
    "TaskManifest",
    "TaskResult",
    "ThresholdSegmenter",
    "WorkItem",
    "export_kind",
    "export_kinds",
    "export_results",
    "list_items",
    "make_segmenter",
    "register_export_kind",
    "register_segmenter",
    "register_step",
    "run_pipeline",
    "run_task",
]
