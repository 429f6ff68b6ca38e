"""A loadable straight to a file (``dicomstation load --to``), by the shortest way.

When the files' stored pixel bytes already are the voxels - every frame uncompressed
little endian, one frame per file, one grey sample, one stored integer type, one
Rescale Slope/Intercept that NIfTI's float32 ``scl_slope``/``scl_inter`` hold exactly,
no lookup table, nothing to resample - a NIfTI file is written from those bytes, as
dcm2niix does: the stored integers, with the rescale in ``scl_slope``/``scl_inter``.
The bytes are copied from file to file by the kernel (``copy_file_range``): no array,
no decoding, no rescaling pass, and a CT keeps 2 bytes per voxel. Readers that apply
the header's scaling (nibabel, SimpleITK/ITK, FSL, AFNI, ITK-SNAP, 3D Slicer) get the
values :func:`~dicomstation.volumes.load` gives. Otherwise - or with
``apply_rescale=True`` (CLI ``--apply-rescale``), or for NRRD - the stack is decoded and
the rescaled values are written with ``scl_slope`` 1 and ``scl_inter`` 0.
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

__all__ = ["Converted", "convert", "stored_scaling"]

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
    layout = arrange(loadable)
    stored = None if apply_rescale else stored_scaling(layout, correct_tilt, equidistant)
    if stored is not None and out.name.lower().endswith((".nii", ".nii.gz")):
        dtype, scaling = stored
        try:
            _atomic(out, lambda tmp: _write_stored(tmp, layout, dtype, scaling))
        except _FallbackError:
            pass  # a file that is not as its header said: the decoder names the problem
        else:
            messages = list(layout.messages)
            warn_geometry(messages, stacklevel)
            fields = stack_fields(loadable, layout, messages, scaling != (1.0, 0.0))
            f0 = layout.grid[0][0]
            shape = (len(layout.grid), len(layout.grid[0]), f0.rows, f0.columns)
            affine = np.asarray(layout.geometry.affine, dtype=np.float64)
            return Converted(out, shape, dtype, scaling, affine, fields)
    stack = decode_stack(
        loadable,
        correct_tilt=correct_tilt,
        equidistant=equidistant,
        stacklevel=stacklevel + 1,
        layout=layout,
    )
    return Converted.of(stack, write_array(stack.array, stack.affine, out))


def stored_scaling(
    layout: StackLayout, correct_tilt: bool = False, equidistant: bool = False
) -> tuple[np.dtype[np.generic], tuple[float, float]] | None:
    """The stored dtype and ``(slope, intercept)`` when the stored bytes can be the voxels.

    None when a frame needs decoding (compressed, big endian, deflated, multi-frame,
    mosaic, colour, bit-packed, signed with unused high bits, a lookup table), when the
    frames differ in stored type or rescale, when the rescale is not exact in float32,
    or when the stack is to be resampled (tilt correction, equidistant slices).
    """
    frames = [f for row in layout.grid for f in row]
    if not all(_native(f) for f in frames) or needs_luts(layout.grid):
        return None
    from dicomstation.volumes.pixels import stored_dtype

    dtypes = {stored_dtype(f) for f in frames}
    rescales = {(f.rescale_slope, f.rescale_intercept) for f in frames}
    if len(dtypes) != 1 or len(rescales) != 1:
        return None
    dtype, (slope, intercept) = dtypes.pop(), rescales.pop()
    if dtype is None or not (_exact(slope) and _exact(intercept)) or slope == 0.0:
        return None
    geometry = layout.geometry
    if correct_tilt and geometry.tilt_shifts is not None:
        return None
    if equidistant and geometry.distances is not None:
        from dicomstation.volumes.equidistant import is_uneven

        if is_uneven(geometry.distances, float(np.linalg.norm(geometry.affine[:3, 0]))):
            return None
    return dtype, (slope, intercept)


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
