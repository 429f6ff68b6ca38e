"""A loadable straight to a file (``dicomstation load --to``), by the shortest way.

When the files' stored pixel bytes already are the voxels - every frame uncompressed
little endian, one frame per file, one grey sample, one stored integer type, one
Rescale Slope/Intercept that NIfTI's float32 ``scl_slope``/``scl_inter`` hold exactly,
no lookup table, nothing to resample - a NIfTI file is written from those bytes, as
dcm2niix does: the stored integers, with the rescale in ``scl_slope``/``scl_inter``.
The bytes are copied from file to file by the kernel (``copy_file_range``): no array,
no decoding, no rescaling pass, and a CT keeps 2 bytes per voxel. Readers that apply
the header's scaling (nibabel, SimpleITK/ITK, FSL, AFNI, ITK-SNAP, 3D Slicer) get the
values :func:`~dicomstation.volumes.load` gives.

Such plain frames whose values are float32 (a slope float32 does not hold, such as
Philips', or a rescale that differs between slices; or ``apply_rescale=True``) are
rescaled one frame at a time into one frame buffer that is appended to the file: the
values of ``load``, without a volume-sized array. Everything else (compressed, colour,
a lookup table, resampling, integer rescales that need a wider type, NRRD) is decoded
by :func:`~dicomstation.volumes.decode_stack` and written from its array.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dicomstation.errors import LoadError
from dicomstation.volumes.io import _atomic, _file_axes_affine, write_array
from dicomstation.volumes.load import (
    DecodedStack,
    StackLayout,
    arrange,
    decode_stack,
    stack_fields,
    warn_geometry,
)
from dicomstation.volumes.luts import needs_luts
from dicomstation.volumes.model import LPS_TO_RAS, FrameHeader, Loadable

__all__ = ["Converted", "convert"]

_NATIVE_LE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")  # explicit, implicit VR
#: copy_file_range errors that mean "not between these files": copy through a buffer.
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


@dataclass(frozen=True)
class Converted:
    """What :func:`convert` wrote (or, without a path, what it would write).

    Attributes
    ----------
    path : pathlib.Path or None
        The written file.
    shape : tuple of int
        ``(time, slice, row, column[, sample])`` of the voxels.
    dtype : numpy.dtype
        The voxels' type in the file.
    scaling : tuple of float
        ``(scl_slope, scl_inter)`` in the file; ``(1.0, 0.0)`` when the voxels are the values.
    affine : numpy.ndarray
        4x4 from ``(slice, row, column)`` indices to LPS millimetres.
    fields : dict
        The other :class:`~dicomstation.volumes.LoadedVolume` fields (see ``DecodedStack``).
    """

    path: Path | None
    shape: tuple[int, ...]
    dtype: np.dtype[np.generic]
    scaling: tuple[float, float]
    affine: npt.NDArray[np.float64]
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, stack: DecodedStack, path: Path | None) -> Converted:
        """A decoded stack written (or not) with its values as voxels."""
        return cls(
            path, stack.array.shape, stack.array.dtype, (1.0, 0.0), stack.affine, stack.fields
        )


def convert(
    loadable: Loadable,
    path: str | os.PathLike[str],
    *,
    correct_tilt: bool = False,
    equidistant: bool = False,
    apply_rescale: bool = False,
    stacklevel: int = 2,
) -> Converted:
    """Write ``loadable`` to ``path`` (``.nii``, ``.nii.gz`` or ``.nrrd``), fastest way first.

    Parameters
    ----------
    loadable : Loadable
        A candidate from :func:`~dicomstation.volumes.examine`.
    path : path-like
        The output file; written to a temporary name and renamed (nothing half-written).
    correct_tilt, equidistant : bool
        As for :func:`~dicomstation.volumes.load` (resampled stacks are decoded).
    apply_rescale : bool
        Write the rescaled values (float32 for a non-integer slope) with identity
        ``scl_slope``/``scl_inter``, instead of the stored integers with the rescale in
        the header (the default for NIfTI, when it is exact; see the module docstring).
    stacklevel : int
        For the :class:`~dicomstation.errors.GeometryWarning` issued, as for
        :func:`warnings.warn`.

    Returns
    -------
    Converted

    Raises
    ------
    LoadError
        When a file cannot be decoded, or the format is unknown.
    """
    out = Path(path)
    name = out.name.lower()
    if not name.endswith((".nii", ".nii.gz", ".nrrd", ".nhdr")):  # before any work
        raise LoadError(f"{path}: unknown volume format (use .nii, .nii.gz or .nrrd)")
    layout = arrange(loadable)
    plan = None
    if name.endswith((".nii", ".nii.gz")) and _plain(layout, correct_tilt, equidistant):
        plan = _plan(layout, apply_rescale)
    if plan is not None:
        try:
            _atomic(out, lambda tmp: plan.write(tmp, layout))
        except _FallbackError:
            pass  # a file that is not as its header said: the decoder names the problem
        else:
            messages = list(layout.messages)
            warn_geometry(messages, stacklevel)
            fields = stack_fields(loadable, layout, messages, plan.rescaled)
            f0 = layout.grid[0][0]
            shape = (len(layout.grid), len(layout.grid[0]), f0.rows, f0.columns)
            affine = np.asarray(layout.geometry.affine, dtype=np.float64)
            return Converted(out, shape, plan.dtype, plan.scaling, affine, fields)
    stack = decode_stack(
        loadable,
        correct_tilt=correct_tilt,
        equidistant=equidistant,
        stacklevel=stacklevel + 1,
        layout=layout,
    )
    return Converted.of(stack, write_array(stack.array, stack.affine, out))


@dataclass(frozen=True)
class _Plan:
    """How a plain stack is written without decoding it into one array."""

    dtype: np.dtype[np.generic]
    scaling: tuple[float, float]
    stored: bool
    """The stored bytes as they are (else each frame rescaled into one frame buffer)."""
    rescaled: bool

    def write(self, tmp: Path, layout: StackLayout) -> None:
        """Write the NIfTI to ``tmp`` (see :func:`_write_stored`, :func:`_write_streamed`)."""
        if self.stored:
            _write_stored(tmp, layout, self.dtype, self.scaling)
        else:
            _write_streamed(tmp, layout, self.dtype)


def _plan(layout: StackLayout, apply_rescale: bool) -> _Plan | None:
    """The stored bytes with the rescale in the header when it is exact (and not
    ``apply_rescale``); frames rescaled one by one when the values are float32; else None.
    """
    from dicomstation.volumes.pixels import output_dtype, stored_dtype

    frames = [f for row in layout.grid for f in row]
    dtypes = {stored_dtype(f) for f in frames}
    rescales = {(f.rescale_slope, f.rescale_intercept) for f in frames}
    if len(dtypes) != 1 or None in dtypes:
        return None
    dtype, rescaled = dtypes.pop(), rescales != {(1.0, 0.0)}
    assert dtype is not None
    if len(rescales) == 1 and not apply_rescale:
        slope, intercept = next(iter(rescales))
        if _exact(slope) and _exact(intercept) and slope != 0.0:
            return _Plan(dtype, (slope, intercept), True, rescaled)
    values, _ = output_dtype(frames)
    if values.kind == "f":  # each frame rescaled on its own (integers may need widening)
        return _Plan(values, (1.0, 0.0), False, rescaled)
    return _Plan(dtype, (1.0, 0.0), True, False) if not rescaled else None


def _plain(layout: StackLayout, correct_tilt: bool, equidistant: bool) -> bool:
    """Every frame native and plain, no lookup table, nothing to resample."""
    frames = [f for row in layout.grid for f in row]
    if not all(_native(f) for f in frames) or needs_luts(layout.grid):
        return False
    geometry = layout.geometry
    if correct_tilt and geometry.tilt_shifts is not None:
        return False
    if equidistant and geometry.distances is not None:
        from dicomstation.volumes.equidistant import is_uneven

        step = float(np.linalg.norm(geometry.affine[:3, 0]))
        return not is_uneven(geometry.distances, step)
    return True


def _native(frame: FrameHeader) -> bool:
    return (
        frame.transfer_syntax_uid in _NATIVE_LE
        and frame.pixel_offset is not None
        and frame.number_of_frames == 1
        and frame.source.frame_number is None
        and frame.mosaic_tile is None
        and frame.samples_per_pixel == 1
        and frame.bits_allocated in (8, 16, 32)
        and not (frame.pixel_representation and frame.bits_stored != frame.bits_allocated)
    )


def _exact(value: float) -> bool:
    """Whether ``value`` is finite and a float32 (NIfTI's scl fields) holds it exactly."""
    return bool(np.isfinite(value)) and float(np.float32(value)) == value


class _FallbackError(Exception):
    """A file is not as its header said (truncated, other length): decode it instead."""


def _write_stored(
    tmp: Path, layout: StackLayout, dtype: np.dtype[np.generic], scaling: tuple[float, float]
) -> None:
    """NIfTI header, then every frame's stored bytes in ``grid`` order (time, slice)."""
    from dicomstation.volumes.nifti import NO_EXTENSION, nifti_header, open_nifti

    grid, f0 = layout.grid, layout.grid[0][0]
    shape = (f0.columns, f0.rows, len(grid[0]), *((len(grid),) if len(grid) > 1 else ()))
    affine = LPS_TO_RAS @ _file_axes_affine(np.asarray(layout.geometry.affine))
    header = nifti_header(shape, dtype, affine, scaling) + NO_EXTENSION
    nbytes = f0.rows * f0.columns * dtype.itemsize
    frames = [f for row in grid for f in row]
    if tmp.name.lower().endswith(".gz"):
        with open_nifti(tmp) as fh:
            fh.write(header)
            for frame in frames:
                with _pixels_of(frame, nbytes) as (fd, start):
                    fh.write(_read_exactly(fd, start, nbytes))
        return
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        os.write(out, header)
        for frame in frames:
            with _pixels_of(frame, nbytes) as (fd, start):
                _copy(fd, start, out, nbytes)
    finally:
        os.close(out)


def _write_streamed(tmp: Path, layout: StackLayout, dtype: np.dtype[np.generic]) -> None:
    """NIfTI header, then each frame read and rescaled into one frame buffer and appended."""
    from dicomstation.volumes.nifti import NO_EXTENSION, nifti_header, open_nifti
    from dicomstation.volumes.pixels import read_native

    grid, f0 = layout.grid, layout.grid[0][0]
    shape = (f0.columns, f0.rows, len(grid[0]), *((len(grid),) if len(grid) > 1 else ()))
    affine = LPS_TO_RAS @ _file_axes_affine(np.asarray(layout.geometry.affine))
    buffer = np.empty((f0.rows, f0.columns), dtype=dtype.newbyteorder("<"))
    with open_nifti(tmp) as fh:
        fh.write(nifti_header(shape, buffer.dtype, affine) + NO_EXTENSION)
        for frame in (f for row in grid for f in row):
            try:
                if not read_native(frame.source.path, frame, buffer):
                    raise _FallbackError
            except (OSError, LoadError) as exc:
                raise _FallbackError from exc
            fh.write(buffer.data)


@contextmanager
def _pixels_of(frame: FrameHeader, nbytes: int) -> Iterator[tuple[int, int]]:
    """The open file of ``frame`` and the offset of its first pixel byte."""
    from dicomstation.volumes.pixels import pixel_value_span

    try:
        fd = os.open(frame.source.path, os.O_RDONLY)
    except OSError as exc:
        raise _FallbackError from exc
    try:
        try:
            start, length = pixel_value_span(fd, frame)
            size = os.fstat(fd).st_size
        except (OSError, LoadError) as exc:
            raise _FallbackError from exc
        if length == 0xFFFFFFFF or length < nbytes or size < start + nbytes:
            raise _FallbackError
        yield fd, start
    finally:
        os.close(fd)


def _copy(src: int, start: int, dst: int, count: int) -> None:
    """Append ``count`` bytes of ``src`` from ``start`` to ``dst`` (in the kernel if it can)."""
    kernel_copy = getattr(os, "copy_file_range", None)  # Linux
    while count and kernel_copy is not None:
        try:
            done = kernel_copy(src, dst, count, start)
        except OSError as exc:
            if exc.errno not in _NO_KERNEL_COPY:
                raise
            break  # not between these two files: through a buffer
        if done == 0:
            raise _FallbackError  # the file ended early
        start, count = start + done, count - done
    if count:
        data = memoryview(_read_exactly(src, start, count))
        while data:
            data = data[os.write(dst, data) :]


def _read_exactly(fd: int, start: int, count: int) -> bytes:
    data = os.pread(fd, count, start)
    if len(data) != count:
        raise _FallbackError
    return data
