"""Export results as new DICOM records (thin adapters over highdicom).

=================  ==============================================  =====================
object             function                                         made with
=================  ==============================================  =====================
derived series     :func:`build_derived_series`                     pydicom (source IOD)
parametric map     :func:`build_parametric_map` (any source)        highdicom PM
segmentation       :func:`build_seg` (read: :func:`read_seg_labelmap`)  highdicom SEG
statistics         :func:`build_sr` (read: :func:`read_sr_measurements`) highdicom TID 1500
screenshot         :func:`build_sc` of :func:`render_slice` / ...   highdicom SC
scene bundle       :func:`build_bundle` (read: :func:`load_scene`)  highdicom SC + zip
=================  ==============================================  =====================

Every builder takes the :class:`SourceSeries` (patient, study and frame of
reference come from it) and :class:`ExportOptions` (series description and
number, institution tags) and returns pydicom Datasets; :func:`import_into`
writes them into the local database, from where ``send`` delivers them.

The names are imported on first use (module ``__getattr__``): ``import
dicomstation.export.common`` (what the pipeline's registry needs to type its inputs) does
not import every builder, and ``from dicomstation.export import build_seg`` imports
:mod:`dicomstation.export.seg` (and what it needs) only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomstation.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dicomstation.export.bundle import (
        Scene,
        SceneSegment,
        SceneSegmentation,
        SceneVolume,
        ViewSettings,
        build_bundle,
        is_bundle,
        load_scene,
    )
    from dicomstation.export.common import (
        ExportOptions,
        SourceSeries,
        import_into,
        write_datasets,
    )
    from dicomstation.export.derived import build_derived_series
    from dicomstation.export.pm import build_parametric_map
    from dicomstation.export.sc import (
        Overlay,
        Rendering,
        blend,
        build_sc,
        draw_overlays,
        read_png,
        render_mip,
        render_slice,
    )
    from dicomstation.export.seg import (
        Algorithm,
        Segment,
        SegmentInfo,
        build_seg,
        build_seg_from_labelmap,
    )
    from dicomstation.export.seg_read import read_seg_labelmap, read_seg_masks
    from dicomstation.export.sr import build_sr, read_sr_measurements

#: public name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "Algorithm": "seg",
    "ExportOptions": "common",
    "Overlay": "sc",
    "Rendering": "sc",
    "Scene": "bundle",
    "SceneSegment": "bundle",
    "SceneSegmentation": "bundle",
    "SceneVolume": "bundle",
    "Segment": "seg",
    "SegmentInfo": "seg",
    "SourceSeries": "common",
    "ViewSettings": "bundle",
    "blend": "sc",
    "build_bundle": "bundle",
    "build_derived_series": "derived",
    "build_parametric_map": "pm",
    "build_sc": "sc",
    "build_seg": "seg",
    "build_seg_from_labelmap": "seg",
    "build_sr": "sr",
    "draw_overlays": "sc",
    "import_into": "common",
    "is_bundle": "bundle",
    "load_scene": "bundle",
    "read_png": "sc",
    "read_seg_labelmap": "seg_read",
    "read_seg_masks": "seg_read",
    "read_sr_measurements": "sr",
    "render_mip": "sc",
    "render_slice": "sc",
    "write_datasets": "common",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


__all__ = [
    "Algorithm",
    "ExportOptions",
    "Overlay",
    "Rendering",
    "Scene",
    "SceneSegment",
    "SceneSegmentation",
    "SceneVolume",
    "Segment",
    "SegmentInfo",
    "SourceSeries",
    "ViewSettings",
    "blend",
    "build_bundle",
    "build_derived_series",
    "build_parametric_map",
    "build_sc",
    "build_seg",
    "build_seg_from_labelmap",
    "build_sr",
    "draw_overlays",
    "import_into",
    "is_bundle",
    "load_scene",
    "read_png",
    "read_seg_labelmap",
    "read_seg_masks",
    "read_sr_measurements",
    "render_mip",
    "render_slice",
    "write_datasets",
]
