"""Write a loaded volume to NIfTI (our own writer, :mod:`.nifti`) or NRRD (pynrrd).

Array axes: a volume's array is ``(slice, row, column)`` (C order). Both
formats are written with axes ``(column, row, slice[, time])`` - the array's
transpose, so the data goes to disk in Fortran order without a copy. NIfTI
gets the RAS affine (``LPS_TO_RAS @ affine``, sform and qform code 1,
scanner); NRRD keeps LPS (``space: left-posterior-superior``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dicomstation.errors import LoadError
from dicomstation.volumes.model import LPS_TO_RAS, LoadedVolume

__all__ = ["write_array", "write_nifti", "write_nrrd", "write_volume"]

_RGB = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def _data(loaded: LoadedVolume) -> npt.NDArray[np.generic]:
    """``(time, slice, row, column[, channel])`` array without copying when possible."""
    first = np.asarray(loaded.time_points[0].array)
    if len(loaded.time_points) == 1:
        return first[np.newaxis]
    base = first.base
    if (
        isinstance(base, np.ndarray)
        and base.shape == (len(loaded.time_points), *first.shape)
        and all(np.shares_memory(np.asarray(v.array), base) for v in loaded.time_points)
    ):
        return base
    return loaded.array_4d()


def _file_axes_affine(affine_lps: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """LPS affine for file axes ``(column, row, slice)``."""
    a = affine_lps
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = a[:3, 2], a[:3, 1], a[:3, 0], a[:3, 3]
    return out


def write_nifti(loaded: LoadedVolume, path: str | os.PathLike[str]) -> Path:
    """Write ``loaded`` as NIfTI-1 (``.nii`` or ``.nii.gz``); 4D for time series.

    Parameters
    ----------
    loaded : LoadedVolume
        The volume (all its time points are written).
    path : path-like
        Output file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    return _write_nifti(_data(loaded), loaded.affine_lps, Path(path))


def _write_nifti(
    data: npt.NDArray[np.generic], affine_lps: npt.NDArray[np.float64], out: Path
) -> Path:
    """``data`` ``(time, slice, row, column[, 3])``: 3D when one time point, RGB24 colour."""
    from dicomstation.volumes.nifti import write_nifti_file

    if data.ndim == 5:  # RGB: NIfTI's RGB24 datatype
        if data.dtype != np.uint8:
            raise LoadError("NIfTI RGB output needs 8-bit colour")
        data = np.ascontiguousarray(data).view(_RGB)[..., 0]
    data = data[0] if data.shape[0] == 1 else data
    affine = LPS_TO_RAS @ _file_axes_affine(affine_lps)
    _atomic(out, lambda tmp: write_nifti_file(tmp, data, affine))
    return out


def write_nrrd(loaded: LoadedVolume, path: str | os.PathLike[str]) -> Path:
    """Write ``loaded`` as NRRD (``.nrrd``, gzip encoded) in LPS space.

    Parameters
    ----------
    loaded : LoadedVolume
        The volume (all its time points are written, as a list axis).
    path : path-like
        Output file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    return _write_nrrd(_data(loaded), loaded.affine_lps, Path(path))


def _write_nrrd(
    data: npt.NDArray[np.generic], affine_lps: npt.NDArray[np.float64], out: Path
) -> Path:
    import nrrd  # imported here: loading volumes does not need it

    affine = _file_axes_affine(affine_lps)
    directions: list[list[float]] = [list(map(float, affine[:3, i])) for i in range(3)]
    kinds = ["domain", "domain", "domain"]
    nan = [float("nan")] * 3
    if data.ndim == 5:
        kinds, directions = ["RGB-color", *kinds], [nan, *directions]
    if data.shape[0] > 1:
        kinds, directions = [*kinds, "list"], [*directions, nan]
    else:
        data = data[0]
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array(directions),
        "space origin": affine[:3, 3],
        "kinds": kinds,
        "encoding": "gzip",
    }
    _atomic(out, lambda tmp: nrrd.write(str(tmp), data.T, header, index_order="F"))
    return out


def write_volume(loaded: LoadedVolume, path: str | os.PathLike[str]) -> Path:
    """Write NIfTI or NRRD, chosen from the suffix (``.nii``, ``.nii.gz``, ``.nrrd``)."""
    return write_array(_data(loaded), loaded.affine_lps, path)


def write_array(
    data: npt.NDArray[np.generic],
    affine_lps: npt.NDArray[np.float64],
    path: str | os.PathLike[str],
) -> Path:
    """Write an array as NIfTI or NRRD, chosen from the suffix, like :func:`write_volume`.

    Parameters
    ----------
    data : numpy.ndarray
        ``(time, slice, row, column[, 3])`` (C order), as ``DecodedStack.array``.
    affine_lps : numpy.ndarray
        4x4 from ``(slice, row, column)`` indices to LPS millimetres.
    path : path-like
        ``.nii``, ``.nii.gz`` or ``.nrrd`` file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    name = Path(path).name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _write_nifti(data, affine_lps, Path(path))
    if name.endswith((".nrrd", ".nhdr")):
        return _write_nrrd(data, affine_lps, Path(path))
    raise LoadError(f"{path}: unknown volume format (use .nii, .nii.gz or .nrrd)")


def _atomic(out: Path, write: object) -> None:
    """Write to a temporary name beside ``out``, then rename (nothing half-written)."""
    suffix = "".join(out.suffixes)
    tmp = out.with_name(f".{out.name}.partial{suffix}")
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, out)
    except OSError as exc:  # a full disk, a folder that is not there or not writable
        raise LoadError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
