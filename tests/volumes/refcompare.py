"""Compare a LoadedVolume with a reference NIfTI (e.g. from dcm2niix), in world space.

The index map between our array and the reference is a signed axis permutation
taken from the two affines' *directions* only; its offset is not read from the
affines but follows from the permutation and the shape (a flipped axis maps index
0 to n - 1). So a reference shifted by one voxel, a flipped axis or other
voxels cannot be absorbed into the map: the world positions of the corners or
the voxel values then differ, and :func:`assert_matches_reference` fails.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import numpy.typing as npt

from dicomstation.volumes import LPS_TO_RAS, LoadedVolume


def to_reference_grid(
    loaded: LoadedVolume, ref: nib.Nifti1Image, atol_mm: float = 1e-4
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64]]:
    """Our data permuted/flipped onto the reference's index grid, and the corner errors (mm).

    Returns ``(data, errors)``: ``data`` is indexed like the reference
    (``(i, j, k[, t])``), ``errors`` holds, for each of the 8 corners of the
    grid, the distance in mm between where our affine and the reference's put it.
    """
    ours = LPS_TO_RAS @ loaded.affine_lps  # (slice,row,col) -> RAS
    theirs = np.asarray(ref.affine, dtype=np.float64)
    m = np.linalg.inv(theirs) @ ours  # our index -> their index
    perm = np.rint(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-3), f"not a signed permutation:\n{m}"
    assert sorted(np.abs(perm).sum(axis=0)) == [1, 1, 1], f"not a permutation:\n{perm}"
    data = loaded.array_4d()  # (t, s, r, c)
    src = [int(np.nonzero(perm[a])[0][0]) for a in range(3)]  # their axis a <- our src[a]
    sign = [int(perm[a, src[a]]) for a in range(3)]
    spatial = np.transpose(data, (*[s + 1 for s in src], 0))  # (i, j, k, t)
    for a in range(3):
        if sign[a] < 0:
            spatial = np.flip(spatial, axis=a)
    shape = np.array(spatial.shape[:3])
    assert tuple(shape) == tuple(ref.shape[:3]), f"shape {tuple(shape)} != {ref.shape[:3]}"
    index_map = np.eye(4)  # our index -> their index, from the permutation and shape only
    index_map[:3, :3] = perm
    index_map[:3, 3] = [(shape[a] - 1) if sign[a] < 0 else 0 for a in range(3)]
    ours_on_theirs = ours @ np.linalg.inv(index_map)  # their index -> world, our geometry
    errors = []
    for corner in np.ndindex(2, 2, 2):
        x = np.array([*(np.array(corner) * (shape - 1)), 1.0])
        errors.append(float(np.linalg.norm((ours_on_theirs @ x - theirs @ x)[:3])))
    spatial = spatial if data.shape[0] > 1 else spatial[..., 0]
    return spatial, np.array(errors)


def assert_matches_reference(
    loaded: LoadedVolume,
    ref: nib.Nifti1Image,
    *,
    atol_mm: float = 1e-4,
    scale: float = 1.0,
) -> None:
    """Assert geometry (every corner within ``atol_mm``) and voxels equal the reference."""
    ours, errors = to_reference_grid(loaded, ref)
    assert errors.max() < atol_mm, f"affine differs by {errors.max()} mm"
    theirs = np.asanyarray(ref.dataobj).astype(np.float64)
    assert ours.shape == theirs.shape, f"{ours.shape} != {theirs.shape}"
    np.testing.assert_allclose(ours.astype(np.float64) * scale, theirs, rtol=2e-6, atol=1e-4)
