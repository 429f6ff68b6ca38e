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
"""

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
