"""Load DICOM series from the local database as volumes (Slicer's scalar-volume plugin).

Two steps, like Slicer's DICOM plugins::

    loadables = examine(files)          # candidate volumes, best first
    loaded = load(loadables[0])         # -> LoadedVolume
    loaded = load_series(files)         # both in one call (best loadable)
    write_nifti(loaded, "out.nii.gz")   # or write_nrrd(loaded, "out.nrrd")

``decode_stack(loadable)`` is ``load`` without the highdicom Volumes (array, affine and
the other fields; ``.loaded()`` wraps it); ``write_array`` writes its array, so a
command that only converts files never imports highdicom or pydicom (classic
uncompressed little-endian series are read without pydicom).
``convert.convert(loadable, path)`` (what ``dicomstation load --to`` runs) writes a
plain series' NIfTI straight from the files' stored pixel bytes, the rescale in
``scl_slope``/``scl_inter`` when float32 holds it exactly (see :mod:`.convert`).

:func:`examine` reads headers only and splits a series that mixes several
volumes (orientation, size, acquisition, echo, image type, temporal position)
into :class:`Loadable` candidates, each with a ``reason`` and a ``confidence``.
:func:`load` sorts slices along the slice normal, decodes pixels (any transfer
syntax pydicom's pixel plugins decode) straight into one preallocated array and
applies Rescale Slope/Intercept (or a Modality LUT Sequence; palette colour is
expanded to 8-bit RGB; deflated files are inflated; a 1-bit SEG gives uint8).
Enhanced multi-frame instances (per-frame
functional groups), cine multi-frames (2D+t), RGB/YBR, secondary captures and
Siemens mosaics (tiles cut per the CSA header) all go through the same path.
Geometry problems (uneven spacing, missing slices, gantry tilt, mixed
orientations or sizes, duplicate positions) are issued as
:class:`~dicomstation.errors.GeometryWarning` *and* recorded in
``LoadedVolume.warnings``. Missing slices: by default the stored slices are
kept with a uniform affine (slices after the gap are then misplaced, and the
warning says so); ``load(..., equidistant=True)`` (CLI ``load --equidistant``)
interpolates them onto equidistant slices instead. A series that cannot become a volume raises
:class:`~dicomstation.errors.LoadError` naming the files.

``LoadedVolume`` fields (stable interface)
------------------------------------------
volume : highdicom.Volume
    The (first time point's) volume. ``volume.array`` is ``(slices, rows,
    columns)``, or ``(slices, rows, columns, 3)`` for RGB (channel
    ``RGBColorChannel``). ``volume.affine`` maps ``(slice, row, column)``
    indices to LPS millimetres; ``volume.spacing``, ``.position``,
    ``.direction`` give spacing, origin and direction cosines.
series_instance_uid, study_instance_uid : str
frame_of_reference_uid : str or None
modality : str
sop_instance_uids : tuple[str, ...]
    Distinct source SOP Instance UIDs in slice order.
sources : tuple[tuple[SliceSource, ...], ...]
    ``sources[t][k]``: path, SOP Instance UID and frame number of slice ``k``
    of time point ``t`` (``slice_sources`` is ``sources[0]``).
warnings : tuple[str, ...]
    Every GeometryWarning message issued while loading.
time_points : tuple[highdicom.Volume, ...]
    Every time point of a 4D or cine series (``(volume,)`` for 3D); views on
    one array. ``time_attribute`` names the DICOM attribute that orders them
    (TemporalPositionIdentifier, TriggerTime, AcquisitionNumber, AcquisitionTime,
    FrameNumber, InstanceNumber; ``FrameTime`` for cine) and ``time_values``
    holds its value per time point (milliseconds for TriggerTime/FrameTime;
    for InstanceNumber, the first slice's).
slice_positions : tuple[tuple[float, float, float], ...]
    ImagePositionPatient of each stored slice (first time point), in slice order.
kind : LoadableKind ; name : str ; rescaled : bool
Convenience: ``is_4d``, ``affine_lps``, ``affine_ras``, ``spacing``,
``origin``, ``direction``, ``array_4d()``.
"""

from __future__ import annotations

from dicomstation.volumes.examine import examine
from dicomstation.volumes.io import write_array, write_nifti, write_nrrd, write_volume
from dicomstation.volumes.load import DecodedStack, decode_stack, load, load_series
from dicomstation.volumes.model import (
    LPS_TO_RAS,
    FrameHeader,
    Loadable,
    LoadableKind,
    LoadedVolume,
    SliceSource,
)

__all__ = [
    "LPS_TO_RAS",
    "DecodedStack",
    "FrameHeader",
    "Loadable",
    "LoadableKind",
    "LoadedVolume",
    "SliceSource",
    "decode_stack",
    "examine",
    "load",
    "load_series",
    "write_array",
    "write_nifti",
    "write_nrrd",
    "write_volume",
]
