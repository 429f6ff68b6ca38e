"""Siemens mosaic images: one 2D file holding every slice of a volume as tiles.

The number of tiles and the slice direction come from the Siemens CSA image
header (parsed by :mod:`nibabel.nicom.csareader`). Each tile becomes a frame
of its own with the position dcm2niix and SPM use: ImagePositionPatient of a
mosaic is the corner of the whole mosaic, so it is moved to the first tile's
corner, then stepped along the slice normal (signed as CSA's
SliceNormalVector) by SpacingBetweenSlices.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from dicomstation.quiet_import import import_quietly

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["mosaic_tiles"]


def _csa_tags(ds: Dataset) -> dict[str, Any] | None:
    # nibabel.nicom warns when imported that its *readers* are experimental (see quiet_import)
    csareader = import_quietly("nibabel.nicom.csareader")
    try:
        header = csareader.get_csa_header(ds, "image")
    except Exception:  # a malformed private header: not a usable mosaic
        return None
    return header["tags"] if header else None


def _item(tags: dict[str, Any], name: str) -> list[Any]:
    items = tags.get(name, {}).get("items", [])
    return list(items) if items else []


def mosaic_tiles(ds: Dataset) -> list[dict[str, Any]] | None:
    """Per-tile header fields of a Siemens mosaic, or ``None`` if ``ds`` is not one.

    Parameters
    ----------
    ds : pydicom.Dataset
        Header (pixel data not needed).

    Returns
    -------
    list of dict or None
        One dict per tile: ``rows``, ``columns``, ``position``, ``mosaic_tile``,
        ``mosaic_grid``, ``pixel_offset`` (None: tiles are cut after decoding).
    """
    if "MOSAIC" not in [str(v).upper() for v in ds.get("ImageType", [])]:
        return None
    tags = _csa_tags(ds)
    count = _item(tags, "NumberOfImagesInMosaic") if tags else []
    if not tags or not count or "ImagePositionPatient" not in ds:
        return None
    n = int(count[0])
    grid = math.ceil(math.sqrt(n))
    rows, cols = int(ds.Rows) // grid, int(ds.Columns) // grid
    o = np.array(ds.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = o[:3], o[3:]
    ps = [float(v) for v in ds.PixelSpacing]
    corner = np.array(ds.ImagePositionPatient, dtype=float)
    first = (
        corner
        + (int(ds.Rows) - rows) / 2 * ps[0] * col_dir
        + (int(ds.Columns) - cols) / 2 * ps[1] * row_dir
    )
    normal = np.cross(row_dir, col_dir)
    csa_normal = _item(tags, "SliceNormalVector")
    if len(csa_normal) == 3 and float(np.dot(normal, csa_normal)) < 0:
        normal = -normal
    step = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    return [
        {
            "rows": rows,
            "columns": cols,
            "position": tuple(float(v) for v in first + t * step * normal),
            "mosaic_tile": t,
            "mosaic_grid": grid,
            "pixel_offset": None,
        }
        for t in range(n)
    ]
