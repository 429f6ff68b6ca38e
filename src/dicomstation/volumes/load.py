"""Turn a :class:`Loadable` into a :class:`LoadedVolume` (Slicer's ``load``)."""

from __future__ import annotations

import os
import warnings as warnings_module
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dicomstation.errors import GeometryWarning, LoadError
from dicomstation.volumes.equidistant import equidistant_slices, is_uneven
from dicomstation.volumes.examine import examine_frames, position_key, time_getter
from dicomstation.volumes.geometry import StackGeometry, sort_along_normal, stack_geometry
from dicomstation.volumes.headers import read_headers
from dicomstation.volumes.luts import apply_luts, needs_luts
from dicomstation.volumes.model import FrameHeader, Loadable, LoadableKind, LoadedVolume
from dicomstation.volumes.pixels import (
    Placement,
    apply_integer_intercepts,
    decode,
    output_dtype,
)

__all__ = [
    "DecodedStack",
    "StackLayout",
    "arrange",
    "decode_stack",
    "load",
    "load_series",
    "stack_fields",
    "warn_geometry",
]

Grid = list[list[FrameHeader]]
#: Notes recorded in ``LoadedVolume.warnings`` that are not geometry problems (not warned).
_NOTES = ("palette colour expanded to RGB", "Modality LUT Sequence applied")


def load_series(
    files: Iterable[str | os.PathLike[str]],
    *,
    correct_tilt: bool = False,
    equidistant: bool = False,
) -> LoadedVolume:
    """Load the best loadable of ``files`` (see :func:`examine` and :func:`load`).

    Parameters
    ----------
    files : iterable of path-like
        The files (or folder) of one series, in any order.
    correct_tilt : bool
        Resample gantry-tilted slices onto an orthogonal grid.
    equidistant : bool
        Resample unevenly spaced slices (missing slices) onto equidistant ones;
        see :func:`load`.

    Returns
    -------
    LoadedVolume

    Raises
    ------
    LoadError
        When no volume can be made, naming the files.
    """
    files = list(files)
    frames, problems = read_headers(files)
    loadables = examine_frames(frames, problems)
    if not loadables:
        raise LoadError(_why_nothing_loadable(files, frames, problems))
    best = loadables[0]
    if len(loadables) > 1 and loadables[1].confidence >= best.confidence:
        others = ", ".join(f"{ld.name!r} ({ld.confidence:.2f})" for ld in loadables[1:4])
        note = (
            f"the files hold {len(loadables)} loadables; loaded {best.name!r} "
            f"({best.confidence:.2f}); others: {others} (use examine() and load())"
        )
        best = replace(best, warnings=(*best.warnings, note))
    return load(best, correct_tilt=correct_tilt, equidistant=equidistant)


def _why_nothing_loadable(
    files: Sequence[object], frames: Sequence[FrameHeader], problems: Sequence[str]
) -> str:
    """One line saying why none of ``files`` gave a loadable: each file's reason."""
    reasons = list(problems[:3]) + (["..."] if len(problems) > 3 else [])
    no_pixels = sorted({str(f.source.path) for f in frames if not f.has_pixel_data})
    if no_pixels:
        reasons.append(f"{len(no_pixels)} file(s) have no pixel data: {no_pixels[:3]}")
    why = "; ".join(reasons) or f"{[str(f) for f in files[:5]]}"
    return f"no loadable image among {len(files)} file(s): {why}"


def load(
    loadable: Loadable, *, correct_tilt: bool = False, equidistant: bool = False
) -> LoadedVolume:
    """Load one loadable: sort, check geometry, decode, rescale.

    Every geometry problem is issued as a :class:`GeometryWarning` and recorded
    in ``LoadedVolume.warnings``.

    Parameters
    ----------
    loadable : Loadable
        A candidate from :func:`examine`.
    correct_tilt : bool
        Resample gantry-tilted slices so the orthogonal affine is exact.
    equidistant : bool
        When slices are unevenly spaced (a missing slice, variable spacing),
        interpolate them linearly onto slices one median step apart (float32),
        like dcm2niix's equidistant output. Default ``False``: the slices are
        kept as stored, with a uniform affine (slices after a gap are then
        misplaced; the warning says so). ``slice_positions`` always holds the
        stored slices' positions.

    Returns
    -------
    LoadedVolume

    Raises
    ------
    LoadError
        When a file cannot be decoded (corrupt, unsupported transfer syntax...).
    """
    return decode_stack(
        loadable, correct_tilt=correct_tilt, equidistant=equidistant, stacklevel=3
    ).loaded()


@dataclass(frozen=True)
class DecodedStack:
    """A decoded loadable before it becomes highdicom Volumes (what ``load`` wraps).

    Writing a file needs only the array and the affine, so ``dicomstation load
    --to`` stops here and does not import highdicom. ``fields`` holds every
    other :class:`LoadedVolume` field.

    Attributes
    ----------
    array : numpy.ndarray
        ``(time, slice, row, column[, sample])``.
    affine : numpy.ndarray
        4x4 from ``(slice, row, column)`` indices to LPS millimetres.
    fields : dict
        The other LoadedVolume fields (UIDs, sources, warnings, time values...).
    """

    array: npt.NDArray[np.generic]
    affine: npt.NDArray[np.float64]
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing ``(slice, row, column)`` in millimetres."""
        s = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position of the centre of voxel ``(0, 0, 0)``."""
        p = self.affine[:3, 3]
        return (float(p[0]), float(p[1]), float(p[2]))

    def loaded(self) -> LoadedVolume:
        """The :class:`LoadedVolume`: one highdicom Volume per time point (views on one array)."""
        import highdicom as hd

        channels: dict[Any, Sequence[Any]] | None = (
            {hd.RGB_COLOR_CHANNEL_DESCRIPTOR: ["R", "G", "B"]} if self.array.ndim == 5 else None
        )
        frame_of_reference = self.fields["frame_of_reference_uid"]
        volumes = tuple(
            hd.Volume(v, self.affine, "PATIENT", frame_of_reference, channels=channels)
            for v in self.array
        )
        return LoadedVolume(volume=volumes[0], time_points=volumes, **self.fields)


@dataclass(frozen=True)
class StackLayout:
    """A loadable's frames arranged for decoding, before any pixel is read.

    Attributes
    ----------
    grid : list of list of FrameHeader
        ``grid[time][slice]``, slices sorted along the normal (duplicates dropped).
    time_values : tuple of float
        The time attribute's value per time point.
    geometry : StackGeometry
        Affine, geometry warnings, tilt shifts and slice distances of ``grid[0]``.
    messages : tuple of str
        The loadable's warnings, layout notes and geometry warnings.
    """

    grid: Grid
    time_values: tuple[float, ...]
    geometry: StackGeometry
    messages: tuple[str, ...]


def arrange(loadable: Loadable) -> StackLayout:
    """Sort ``loadable``'s frames into a :class:`StackLayout` and check the geometry."""
    grid, time_values, notes = _layout(loadable)
    geometry = stack_geometry(grid[0])
    return StackLayout(
        grid, time_values, geometry, (*loadable.warnings, *notes, *geometry.warnings)
    )


def decode_stack(
    loadable: Loadable,
    *,
    correct_tilt: bool = False,
    equidistant: bool = False,
    stacklevel: int = 2,
    layout: StackLayout | None = None,
) -> DecodedStack:
    """Sort, check geometry, decode and rescale ``loadable`` (see :func:`load`).

    Every geometry problem is issued as a :class:`GeometryWarning` (``stacklevel``
    as for :func:`warnings.warn`) and recorded in ``fields["warnings"]``.
    ``layout``: :func:`arrange` of ``loadable`` when already made.
    """
    layout = layout or arrange(loadable)
    messages = list(layout.messages)
    array, rescaled = _pixels(
        layout.grid, loadable, layout.geometry, messages, correct_tilt, equidistant
    )
    warn_geometry(messages, stacklevel)
    fields = stack_fields(loadable, layout, messages, rescaled)
    return DecodedStack(array, np.asarray(layout.geometry.affine, dtype=np.float64), fields)


def warn_geometry(messages: Sequence[str], stacklevel: int) -> None:
    """Issue every message but the notes as a :class:`GeometryWarning`.

    ``stacklevel`` as :func:`warnings.warn` would take it at the caller.
    """
    for message in messages:
        if message not in _NOTES:
            warnings_module.warn(message, GeometryWarning, stacklevel=stacklevel + 1)


def stack_fields(
    loadable: Loadable, layout: StackLayout, messages: Sequence[str], rescaled: bool
) -> dict[str, Any]:
    """The :class:`LoadedVolume` fields other than the volumes (``DecodedStack.fields``)."""
    grid = layout.grid
    f0 = grid[0][0]
    return {
        "series_instance_uid": f0.series_instance_uid,
        "study_instance_uid": f0.study_instance_uid,
        "frame_of_reference_uid": f0.frame_of_reference_uid,
        "modality": f0.modality,
        "sop_instance_uids": tuple(
            dict.fromkeys(f.source.sop_instance_uid for r in grid for f in r)
        ),
        "sources": tuple(tuple(f.source for f in row) for row in grid),
        "warnings": tuple(messages),
        "time_values": layout.time_values,
        "time_attribute": _time_attribute(loadable),
        "kind": loadable.kind,
        "name": loadable.name,
        "rescaled": rescaled,
        "slice_positions": tuple(f.position for f in grid[0] if f.position is not None),
    }


def _pixels(
    grid: Grid,
    loadable: Loadable,
    geometry: StackGeometry,
    messages: list[str],
    correct_tilt: bool,
    equidistant: bool,
) -> tuple[npt.NDArray[np.generic], bool]:
    """Decode, apply LUTs, correct tilt and resample gaps as asked; notes go to ``messages``."""
    tilt = geometry.tilt_shifts if correct_tilt else None
    array, rescaled = _decode(grid, loadable.frames, float_output=tilt is not None)
    if needs_luts(grid):
        array, note = apply_luts(array, grid)
        rescaled = rescaled or "Modality" in note
        messages.append(note)
    if tilt is not None:
        _resample_tilt(array, tilt)
        messages[:] = [m.split(";")[0] if "tilt" in m else m for m in messages]
        messages.append("tilt corrected: slices resampled (linear) onto the orthogonal grid")
    step = float(np.linalg.norm(geometry.affine[:3, 0]))
    distances = geometry.distances
    if equidistant and distances is not None and is_uneven(distances, step):
        array = equidistant_slices(array, distances, step)
        messages[:] = [m.split(";")[0] if m.startswith("missing") else m for m in messages]
        messages.append(
            f"equidistant: {len(distances)} slices resampled (linear) onto "
            f"{array.shape[1]} slices {step:.4g} mm apart"
        )
    return array, rescaled


def _decode(
    grid: Grid, frames: Sequence[FrameHeader], *, float_output: bool
) -> tuple[npt.NDArray[np.generic], bool]:
    """Preallocate ``(time, slice, row, column[, sample])`` and decode every frame into it."""
    dtype, rescaled = output_dtype(frames)
    if float_output:
        dtype = np.dtype(np.float32)
    f0 = grid[0][0]
    shape: tuple[int, ...] = (len(grid), len(grid[0]), f0.rows, f0.columns)
    if f0.samples_per_pixel > 1:
        shape = (*shape, f0.samples_per_pixel)
    placements = [Placement(f, (t, k)) for t, row in enumerate(grid) for k, f in enumerate(row)]
    array = decode(shape, dtype, placements)
    return apply_integer_intercepts(array, placements), rescaled


def _time_attribute(loadable: Loadable) -> str | None:
    if loadable.kind is LoadableKind.CINE and loadable.time_attribute is None:
        return "FrameTime" if loadable.frames[0].frame_time_ms else "FrameNumber"
    return loadable.time_attribute


def _layout(loadable: Loadable) -> tuple[Grid, tuple[float, ...], list[str]]:
    """Arrange frames as ``grid[time][slice]``; return time values and notes."""
    frames = list(loadable.frames)
    if loadable.kind is LoadableKind.TIME_SERIES and loadable.time_attribute:
        return _time_grid(frames, loadable.time_attribute)
    if loadable.kind is LoadableKind.CINE:
        if loadable.time_attribute:
            getter = time_getter(loadable.time_attribute)
            ordered = sorted(frames, key=lambda f: _sortable(getter(f)))
            return (
                [[f] for f in ordered],
                tuple(_as_float(getter(f), i) for i, f in enumerate(ordered)),
                [],
            )
        ordered = sorted(frames, key=lambda f: f.source.frame_number or 0)
        dt = ordered[0].frame_time_ms
        return (
            [[f] for f in ordered],
            tuple(float(i) * (dt or 1.0) for i in range(len(ordered))),
            [],
        )
    ordered = sort_along_normal(frames)
    kept, dropped = _drop_duplicates(ordered)
    notes = []
    if dropped:
        names = sorted({f.source.path.name for f in dropped})
        notes.append(f"duplicate positions: {len(dropped)} frame(s) dropped ({names[:5]})")
    return [kept], (0.0,), notes


def _drop_duplicates(frames: Sequence[FrameHeader]) -> tuple[list[FrameHeader], list[FrameHeader]]:
    if frames[0].position is None:
        return list(frames), []
    kept: list[FrameHeader] = []
    dropped: list[FrameHeader] = []
    seen: set[tuple[float, ...] | None] = set()
    for frame in frames:
        key = position_key(frame)
        (dropped if key in seen else kept).append(frame)
        seen.add(key)
    return kept, dropped


def _time_grid(
    frames: list[FrameHeader], keyword: str
) -> tuple[Grid, tuple[float, ...], list[str]]:
    """4D: one list per time point, each sorted along the normal."""
    getter = time_getter(keyword)
    by_position: dict[tuple[float, ...] | None, list[FrameHeader]] = {}
    for frame in sort_along_normal(frames):
        by_position.setdefault(position_key(frame), []).append(frame)
    columns = [sorted(group, key=lambda f: _sortable(getter(f))) for group in by_position.values()]
    n_times = len(columns[0])
    grid = [[column[t] for column in columns] for t in range(n_times)]
    values = tuple(_as_float(getter(f), i) for i, f in enumerate(columns[0]))
    return grid, values, []


def _sortable(value: object) -> tuple[int, float | str]:
    if isinstance(value, int | float):
        return (0, float(value))
    return (1, str(value))


def _as_float(value: object, default: int) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float(default)


def _resample_tilt(array: npt.NDArray[np.generic], shifts: npt.NDArray[np.float64]) -> None:
    """Shift every slice in-plane so a tilted stack lies on the orthogonal grid."""
    from scipy import ndimage

    for t in range(array.shape[0]):
        for k in range(array.shape[1]):
            shift = (float(shifts[k, 0]), float(shifts[k, 1])) + (0.0,) * (array.ndim - 4)
            plane = array[t, k]
            array[t, k] = ndimage.shift(plane, shift, order=1, mode="nearest")
