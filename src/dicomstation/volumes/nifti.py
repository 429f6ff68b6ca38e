"""A NIfTI-1 writer (single file, ``.nii`` or ``.nii.gz``) in a few lines of ``struct``.

``nibabel`` takes ~0.2 s to import and is not needed to write one header: the 348-byte
NIfTI-1 header, 4 bytes of (no) extension, then the data. The data are written straight
from the C-ordered ``(time, slice, row, column[, sample])`` array, which is the Fortran
order of the file's ``(column, row, slice[, time])`` axes: no transposed copy. The header
is what nibabel writes for ``Nifti1Image(data.T, affine)`` with sform and qform code 1
(scanner), units mm and s (a test reads the file back with nibabel and compares).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = ["NO_EXTENSION", "nifti_header", "open_nifti", "write_nifti_file"]

#: NIfTI-1 datatype codes (and the RGB24 code for a 3 x uint8 structured dtype).
_DATATYPES = {
    np.dtype(np.uint8): 2,
    np.dtype(np.int16): 4,
    np.dtype(np.int32): 8,
    np.dtype(np.float32): 16,
    np.dtype(np.float64): 64,
    np.dtype(np.int8): 256,
    np.dtype(np.uint16): 512,
    np.dtype(np.uint32): 768,
    np.dtype(np.int64): 1024,
    np.dtype(np.uint64): 1280,
}
_RGB24 = 128
_HEADER = struct.Struct("<i10s18sihcb8h3f4h8f3fhcb4f2i80s24s2h6f12f16s4s")
assert _HEADER.size == 348
_VOX_OFFSET = 352
#: The 4 bytes between the header and the data: no extensions.
NO_EXTENSION = b"\0\0\0\0"


def _quaternion(rotation: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    """(b, c, d) of the unit quaternion of a proper rotation, with a >= 0 (as nibabel)."""
    u, _, vt = np.linalg.svd(rotation)  # the nearest orthogonal matrix (polar decomposition)
    r = u @ vt
    trace = float(np.trace(r))
    candidates = (trace, float(r[0, 0]), float(r[1, 1]), float(r[2, 2]))
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = (s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s)
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = ((r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s)
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = ((r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s)
    else:
        s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = ((r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4)
    sign = -1.0 if q[0] < 0 else 1.0
    return (sign * float(q[1]), sign * float(q[2]), sign * float(q[3]))


def nifti_header(
    shape: tuple[int, ...],
    dtype: np.dtype[np.generic],
    affine: npt.NDArray[np.float64],
    scaling: tuple[float, float] = (1.0, 0.0),
) -> bytes:
    """The 348-byte NIfTI-1 header of an image of ``shape`` (file axes) and RAS ``affine``.

    ``dtype`` is a numeric dtype, or a structured 3 x uint8 dtype for RGB24.
    ``scaling`` is ``(scl_slope, scl_inter)``: readers take ``value * scl_slope +
    scl_inter`` (stored as float32; ``(1, 0)`` is the identity).
    """
    if dtype.names is not None and len(dtype.names) == 3 and dtype.itemsize == 3:
        code, bitpix = _RGB24, 24
    elif dtype in _DATATYPES:
        code, bitpix = _DATATYPES[dtype], dtype.itemsize * 8
    else:
        raise ValueError(f"NIfTI-1 has no datatype for {dtype}")
    if not 1 <= len(shape) <= 7:
        raise ValueError(f"NIfTI-1 holds 1 to 7 dimensions, not {len(shape)}")
    dims = [len(shape), *shape, *([1] * (7 - len(shape)))]
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    zooms = np.sqrt(np.sum(linear * linear, axis=0))
    rotation = linear / np.where(zooms == 0, 1.0, zooms)
    qfac = 1.0
    if np.linalg.det(rotation) <= 0:
        qfac = -1.0
        rotation[:, 2] *= -1
    quat = _quaternion(rotation)
    pixdim = [qfac, *map(float, zooms), *([1.0] * 4)]
    srow = [float(v) for v in np.asarray(affine, dtype=np.float64)[:3].ravel()]
    offset = [float(v) for v in np.asarray(affine, dtype=np.float64)[:3, 3]]
    return _HEADER.pack(
        348, b"", b"", 0, 0, b"\0", 0,  # sizeof_hdr, data_type, db_name, extents, ..., dim_info
        *dims,
        0.0, 0.0, 0.0, 0, code, bitpix, 0,  # intent_p1..3, intent_code, datatype, bitpix, ...
        *pixdim,
        float(_VOX_OFFSET), *map(float, scaling),  # vox_offset, scl_slope, scl_inter
        0, b"\0", 10,  # slice_end, slice_code, xyzt_units (mm | s)
        0.0, 0.0, 0.0, 0.0, 0, 0,  # cal_max, cal_min, slice_duration, toffset, glmax, glmin
        b"", b"",  # descrip, aux_file
        1, 1,  # qform_code, sform_code: scanner
        *quat, *offset,
        *srow,
        b"", b"n+1\0",
    )  # fmt: skip


def open_nifti(path: Path) -> BinaryIO:
    """``path`` opened for writing: gzip-compressed (level 1, as nibabel) for ``.gz`` names."""
    if path.name.lower().endswith(".gz"):
        import gzip  # only when asked for

        return gzip.GzipFile(path, "wb", compresslevel=1, mtime=0)  # type: ignore[return-value]
    return path.open("wb")


def write_nifti_file(
    path: Path, data: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]
) -> None:
    """Write ``data`` (C order; file axes reversed) with RAS ``affine`` to ``path``.

    ``.gz`` names are gzip-compressed (level 1, as nibabel); others are written raw.
    The data go out in one write of the array's own buffer (no copy when it is
    C-contiguous and little endian).
    """
    data = np.ascontiguousarray(data)
    if data.dtype.byteorder == ">" or (data.dtype.byteorder == "=" and np.little_endian is False):
        data = data.astype(data.dtype.newbyteorder("<"))
    header = nifti_header(tuple(reversed(data.shape)), data.dtype, affine)
    with open_nifti(path) as fh:
        fh.write(header + NO_EXTENSION)
        fh.write(data.reshape(-1).view(np.uint8).data)
