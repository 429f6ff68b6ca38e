"""Compare a LoadedVolume with a reference NIfTI (e.g. from dcm2niix), in world space."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import numpy.typing as npt

from dicomstation.volumes import LPS_TO_RAS, LoadedVolume


def to_reference_grid(
    loaded: LoadedVolume, ref: nib.Nifti1Image, atol_mm: float = 1e-4
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64]]:
    """Our data permuted/flipped onto the reference's index grid, and the max affine error.

    Works out the signed axis permutation that maps our ``(slice, row, column)``
    indices to the reference's ``(i, j, k)`` from the two affines, so nothing
    about dcm2niix's conventions (row flip) is hard-coded.
    """
    ours = LPS_TO_RAS @ loaded.affine_lps  # (slice,row,col) -> RAS
    theirs = ref.affine
    m = np.linalg.inv(theirs) @ ours  # our index -> their index
    perm = np.rint(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-3), f"not a signed permutation:\n{m}"
    data = loaded.array_4d()  # (t, s, r, c)
    spatial = data
    # their axis a comes from our axis src[a] (with sign)
    src = [int(np.nonzero(perm[a])[0][0]) for a in range(3)]
    sign = [int(perm[a, src[a]]) for a in range(3)]
    spatial = np.transpose(data, (*[s + 1 for s in src], 0))  # (i, j, k, t)
    for a in range(3):
        if sign[a] < 0:
            spatial = np.flip(spatial, axis=a)
    shape = np.array(spatial.shape[:3])
    index_map = np.eye(4)
    index_map[:3, :3] = perm
    index_map[:3, 3] = np.rint(m[:3, 3])
    assert np.allclose(m[:3, 3], index_map[:3, 3], atol=1e-3), f"not an integer shift:\n{m}"
    ours_on_theirs = ours @ np.linalg.inv(index_map)  # their index -> world, our geometry
    err_corners = []
    for corner in np.ndindex(2, 2, 2):
        x = np.array([*(np.array(corner) * (shape - 1)), 1.0])
        err_corners.append(np.abs(ours_on_theirs @ x - theirs @ x)[:3].max())
    spatial = spatial if data.shape[0] > 1 else spatial[..., 0]
    return spatial, np.array(err_corners)
