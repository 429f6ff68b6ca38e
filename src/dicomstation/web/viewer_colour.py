"""Colour images in the workstation viewer (RGB, YBR_FULL / YBR_FULL_422, palette colour).

The loader gives every colour series as 8-bit RGB: pydicom converts YBR to RGB and
palette colour is expanded through its lookup tables. The viewer shows those values
as stored, with no window/level: PS3.3 C.11.2 applies VOI LUTs (Window Center and
Width) to greyscale images only, and a colour image (ultrasound, a screenshot, our
own Secondary Captures) is already meant for display. The UI disables the window
inputs for a colour volume and the server ignores a window sent for one.
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np

from dicomstation.errors import ProcessingError
from dicomstation.export import Overlay, Rendering, draw_overlays

__all__ = ["COLOUR_WINDOW", "is_colour", "render_colour"]

COLOUR_WINDOW = {"center": 127.5, "width": 255.0, "source": "colour: shown as stored (no window)"}


def is_colour(volume: hd.Volume) -> bool:
    """Whether a volume has a channel dimension (RGB samples)."""
    return volume.number_of_channel_dimensions != 0


def _to_rgb8(plane: np.ndarray) -> np.ndarray:
    """An RGB plane as uint8 (16-bit colour scaled down by its range, as stored values)."""
    if plane.dtype == np.uint8:
        return np.ascontiguousarray(plane)
    top = 65535.0 if float(plane.max(initial=0)) > 255 else 255.0
    return np.clip(plane.astype(np.float64) / top * 255, 0, 255).round().astype(np.uint8)


def render_colour(
    volume: hd.Volume,
    index: int | None,
    *,
    axis: int,
    mip: bool = False,
    overlays: Sequence[Overlay] = (),
) -> Rendering:
    """One slice (or a per-channel maximum projection) of an RGB volume, as stored.

    Raises
    ------
    ProcessingError
        When the volume is not RGB or the slice is outside it.
    """
    array = np.asarray(volume.array)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ProcessingError(f"not an RGB volume: array shape {array.shape}")
    rows_axis, cols_axis = [a for a in (0, 1, 2) if a != axis]
    spacing = (volume.spacing[rows_axis], volume.spacing[cols_axis])
    if mip:
        return Rendering(_to_rgb8(np.max(array, axis=axis)), pixel_spacing=spacing, axis=axis)
    size = array.shape[axis]
    index = size // 2 if index is None else index
    if not 0 <= index < size:
        raise ProcessingError(f"slice {index} is outside 0..{size - 1} along axis {axis}")
    rendering = Rendering(
        _to_rgb8(np.take(array, index, axis=axis)),
        pixel_spacing=spacing,
        slice_index=index,
        axis=axis,
    )
    return draw_overlays(rendering, overlays) if overlays else rendering
