"""Lookup tables applied after decoding: Modality LUT Sequence and palette colour.

A Modality LUT Sequence maps stored values to output values through a table
(instead of Rescale Slope/Intercept); a PALETTE COLOR image holds indices into
red, green and blue tables. Both are applied with :mod:`pydicom.pixels` per
source file (each file may carry its own table), slice by slice into a new
array; the LUTs are read from the file headers only when a series needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from dicomstation.errors import LoadError
from dicomstation.volumes.model import FrameHeader

if TYPE_CHECKING:  # pydicom is imported only when a series needs its tables
    from pydicom.dataset import Dataset

__all__ = ["apply_luts", "needs_luts"]

Grid = Sequence[Sequence[FrameHeader]]


def needs_luts(grid: Grid) -> bool:
    """Whether any frame needs a modality LUT or a colour palette."""
    return any(f.has_modality_lut or _palette(f) for row in grid for f in row)


def _palette(frame: FrameHeader) -> bool:
    return frame.photometric_interpretation == "PALETTE COLOR"


def apply_luts(array: npt.NDArray[np.generic], grid: Grid) -> tuple[npt.NDArray[np.generic], str]:
    """Apply modality LUTs or palettes to ``array`` ``(time, slice, row, column)``.

    Returns the new array (``(..., 3)`` 8-bit RGB for palette colour: 16-bit
    palette entries keep their high byte) and a note for the loader's messages.

    Raises
    ------
    LoadError
        When a table is missing or malformed, naming the file.
    """
    import pydicom

    headers: dict[Path, Dataset] = {}
    palette = _palette(grid[0][0])
    out: npt.NDArray[np.generic] | None = None
    for t, row in enumerate(grid):
        for k, frame in enumerate(row):
            path = frame.source.path
            if path not in headers:
                headers[path] = pydicom.dcmread(path, stop_before_pixels=True)
            mapped = _map(array[t, k], headers[path], frame, palette)
            if out is None:
                out = np.empty(array.shape[:2] + mapped.shape, dtype=mapped.dtype)
            out[t, k] = mapped
    assert out is not None
    if palette and out.dtype == np.uint16:  # 16-bit palette entries: keep the 8 high bits
        out = np.right_shift(out, 8).astype(np.uint8)
    what = "palette colour expanded to RGB" if palette else "Modality LUT Sequence applied"
    return out, what


def _map(
    plane: npt.NDArray[np.generic], ds: Dataset, frame: FrameHeader, palette: bool
) -> npt.NDArray[np.generic]:
    from pydicom.pixels.processing import apply_color_lut, apply_modality_lut

    try:
        if palette:
            return np.asarray(apply_color_lut(plane, ds))
        if frame.has_modality_lut:
            return np.asarray(apply_modality_lut(plane, ds))
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        kind = "palette" if palette else "Modality LUT"
        raise LoadError(f"{frame.source.path}: cannot apply its {kind} ({exc})") from exc
    return plane
