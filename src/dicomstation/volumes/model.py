"""The objects the volume loader hands out: :class:`Loadable` and :class:`LoadedVolume`.

Field names here are a stable interface (processing and export consume them).
See :mod:`dicomstation.volumes` for the documentation of every field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # highdicom (~0.5 s to import) is imported by ``load`` when it builds one
    import highdicom as hd

__all__ = [
    "LPS_TO_RAS",
    "FrameHeader",
    "Loadable",
    "LoadableKind",
    "LoadedVolume",
    "SliceSource",
]

#: Multiply an LPS affine on the left by this to get the RAS affine (NIfTI).
LPS_TO_RAS: npt.NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])


class LoadableKind(enum.Enum):
    """What a :class:`Loadable` becomes when loaded."""

    VOLUME = "volume"
    """A 3D scalar (or RGB) volume, from slices or one multi-frame instance."""
    TIME_SERIES = "time_series"
    """A 4D series: several volumes at the same positions, ordered in time."""
    CINE = "cine"
    """A 2D+t multi-frame (ultrasound, XA cine...): one slice per time point."""
    IMAGE = "image"
    """A single 2D image (secondary capture, CR/DX, single slice)."""


@dataclass(frozen=True)
class SliceSource:
    """Where one slice of a loaded volume came from.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    sop_instance_uid : str
        SOP Instance UID of the file.
    frame_number : int or None
        1-based frame number inside a multi-frame instance, ``None`` for a
        single-frame instance.
    """

    path: Path
    sop_instance_uid: str
    frame_number: int | None = None


@dataclass(frozen=True)
class FrameHeader:
    """Everything the loader needs from one frame (internal, built by ``headers``).

    Classic series have one frame per file; an enhanced multi-frame instance
    gives one ``FrameHeader`` per frame, filled from its functional groups.
    """

    source: SliceSource
    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    transfer_syntax_uid: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    rescale_slope: float
    rescale_intercept: float
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    sop_class_uid: str
    series_description: str = ""
    instance_number: int | None = None
    acquisition_number: int | None = None
    echo_number: int | None = None
    echo_time: float | None = None
    temporal_position: int | None = None
    trigger_time: float | None = None
    acquisition_time: str = ""
    image_type: tuple[str, ...] = ()
    frame_time_ms: float | None = None
    has_pixel_data: bool = True
    stack_position: int | None = None
    pixel_offset: int | None = None
    mosaic_tile: int | None = None
    """Tile index in a Siemens mosaic (``rows``/``columns`` are then the tile's)."""
    mosaic_grid: int = 0
    """Tiles per mosaic row."""
    """File offset of the Pixel Data element (native little-endian syntaxes only)."""
    has_modality_lut: bool = False
    """The frame's stored values map through a Modality LUT Sequence."""
    extra: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class Loadable:
    """A candidate volume proposed by :func:`~dicomstation.volumes.examine`.

    Attributes
    ----------
    name : str
        Human-readable name (series description plus what distinguishes it).
    kind : LoadableKind
        What it loads as.
    frames : tuple of FrameHeader
        The frames it is made of (unsorted; ``load`` sorts them).
    reason : str
        Why these frames were grouped (e.g. ``"echo 2 of 2"``).
    confidence : float
        0..1; the highest-confidence loadable is the one to load by default.
    warnings : tuple of str
        Problems found while examining (also warned again when loading).
    time_attribute : str or None
        For ``TIME_SERIES``: the attribute that orders the time points.
    """

    name: str
    kind: LoadableKind
    frames: tuple[FrameHeader, ...]
    reason: str
    confidence: float
    warnings: tuple[str, ...] = ()
    time_attribute: str | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        """Distinct files of the loadable, in first-seen order."""
        return tuple(dict.fromkeys(f.source.path for f in self.frames))


@dataclass(frozen=True)
class LoadedVolume:
    """A series loaded as a volume (see the package docstring for every field).

    Attributes
    ----------
    volume : highdicom.Volume
        The (first) volume: array ``(slices, rows, columns)`` or
        ``(slices, rows, columns, 3)`` for RGB, affine from index
        ``(slice, row, column)`` to LPS millimetres.
    series_instance_uid, study_instance_uid : str
        Source UIDs.
    frame_of_reference_uid : str or None
        Frame of Reference UID (``None`` when the series has none).
    modality : str
        Modality of the source series.
    sop_instance_uids : tuple of str
        Distinct source SOP Instance UIDs, in slice order.
    sources : tuple of tuple of SliceSource
        ``sources[t][k]`` is where slice ``k`` of time point ``t`` came from.
    warnings : tuple of str
        Every :class:`~dicomstation.errors.GeometryWarning` message issued
        while loading.
    time_points : tuple of highdicom.Volume
        All time points (``(volume,)`` for a 3D series); views on one array.
    time_values : tuple of float
        Value of ``time_attribute`` for each time point (index when absent).
    time_attribute : str or None
        DICOM keyword that orders the time points (``None`` for 3D).
    kind : LoadableKind
        What was loaded.
    name : str
        Name of the loadable.
    rescaled : bool
        Whether Rescale Slope/Intercept (or a Modality LUT) were applied.
    slice_positions : tuple of (float, float, float)
        ImagePositionPatient of each *stored* slice of the first time point, in
        slice order (empty without geometry). With a missing slice these are not
        evenly spaced: they, not the uniform affine, say where each stored slice
        was (see ``equidistant`` in :func:`~dicomstation.volumes.load`).
    """

    volume: hd.Volume
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str | None
    modality: str
    sop_instance_uids: tuple[str, ...]
    sources: tuple[tuple[SliceSource, ...], ...]
    warnings: tuple[str, ...]
    time_points: tuple[hd.Volume, ...]
    time_values: tuple[float, ...] = ()
    time_attribute: str | None = None
    kind: LoadableKind = LoadableKind.VOLUME
    name: str = ""
    rescaled: bool = False
    slice_positions: tuple[tuple[float, float, float], ...] = ()

    @property
    def is_4d(self) -> bool:
        """Whether there is more than one time point."""
        return len(self.time_points) > 1

    @property
    def slice_sources(self) -> tuple[SliceSource, ...]:
        """Sources of the slices of :attr:`volume` (first time point)."""
        return self.sources[0]

    @property
    def affine_lps(self) -> npt.NDArray[np.float64]:
        """4x4 affine from ``(slice, row, column)`` indices to LPS millimetres."""
        return np.asarray(self.volume.affine, dtype=np.float64)

    @property
    def affine_ras(self) -> npt.NDArray[np.float64]:
        """4x4 affine from ``(slice, row, column)`` indices to RAS millimetres."""
        return LPS_TO_RAS @ self.affine_lps

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing ``(slice, row, column)`` in millimetres."""
        s = self.volume.spacing
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position of the centre of voxel ``(0, 0, 0)``."""
        p = self.volume.position
        return (float(p[0]), float(p[1]), float(p[2]))

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        """3x3 matrix whose columns are the unit vectors of the slice, row, column axes."""
        return np.asarray(self.volume.direction, dtype=np.float64)

    def array_4d(self) -> npt.NDArray[np.generic]:
        """All time points stacked: ``(time, slices, rows, columns[, 3])`` (a copy)."""
        return np.stack([v.array for v in self.time_points])
