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
"""

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
    read_seg_labelmap,
    read_seg_masks,
)
from dicomstation.export.sr import build_sr, read_sr_measurements

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
