"""The CT baseline on a phantom of known volumes and on the real CT in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from dicomstation.errors import ConfigError, ProcessingError
from dicomstation.pipeline.segmenters import make_segmenter, segmenter_names
from dicomstation.processing.ct_baseline import (
    BODY,
    BONE,
    LUNGS,
    CTBaselineParams,
    ct_baseline_masks,
)

SPACING = (2.5, 1.5, 1.5)
CT_3SLICE = Path("../shared/data/dcmqi_ct_seg_sr/ct-3slice")


def _phantom() -> tuple[hd.Volume, dict[str, np.ndarray]]:
    """Air; an elliptic soft-tissue body with two box lungs, a box spine, a gas bubble;
    a table below joined by a one-voxel bridge; a bone-dense speck in the air."""
    shape = (40, 128, 128)
    hu = np.full(shape, -1000.0)
    rows, cols = np.ogrid[: shape[1], : shape[2]]
    ellipse = ((rows - 64) / 40.0) ** 2 + ((cols - 64) / 55.0) ** 2 <= 1.0
    body = np.zeros(shape, dtype=bool)
    body[2:38] = ellipse
    hu[body] = 40.0
    lungs = np.zeros(shape, dtype=bool)
    lungs[8:33, 44:74, 30:56] = True
    lungs[8:33, 44:74, 72:98] = True
    hu[lungs] = -850.0
    bone = np.zeros(shape, dtype=bool)
    bone[2:38, 90:100, 58:70] = True
    hu[bone] = 700.0
    hu[20:23, 80:83, 40:43] = -900.0  # bowel gas: inside the body, far too small for a lung
    hu[:, 110:115, :] = 100.0  # table
    hu[2:38, 104:110, 64] = 100.0  # a one-voxel bridge from the body to the table
    hu[5:7, 5:7, 5:7] = 900.0  # a dense speck in the air
    rng = np.random.default_rng(7)
    hu += rng.normal(0.0, 15.0, shape)
    volume = hd.Volume.from_attributes(
        array=hu,
        image_position=(-96.0, -96.0, -50.0),
        image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        pixel_spacing=SPACING[1:],
        spacing_between_slices=SPACING[0],
        coordinate_system="PATIENT",
        frame_of_reference_uid="1.2.826.0.1.3680043.10.511.99.1",
    )
    return volume, {"body": body, "lungs": lungs, "bone": bone}


def test_phantom_volumes_are_found() -> None:
    volume, truth = _phantom()
    masks = ct_baseline_masks(volume)
    voxel_ml = float(np.prod(SPACING)) / 1000
    assert masks.voxel_ml == pytest.approx(voxel_ml)
    # Lungs and bone are boxes: closing and component filtering keep them exactly.
    assert np.array_equal(masks.lungs, truth["lungs"])
    assert np.array_equal(masks.bone, truth["bone"])
    assert masks.volume_ml("lungs") == pytest.approx(2 * 25 * 30 * 26 * voxel_ml)
    # The body: the ellipse (opening trims a few edge voxels), not the table, bridge or speck.
    assert not masks.body[:, 108:, :].any()
    assert not masks.body[5:7, 5:7, 5:7].any()
    expected = float(truth["body"].sum())
    assert abs(float(masks.body.sum()) - expected) / expected < 0.01
    assert masks.body[truth["lungs"]].all() and masks.body[20:23, 80:83, 40:43].all()


def test_label_map_partitions_the_body() -> None:
    volume, truth = _phantom()
    masks = ct_baseline_masks(volume)
    labels = masks.labels()
    assert int((labels == LUNGS).sum()) == int(truth["lungs"].sum())
    assert int((labels == BONE).sum()) == int(truth["bone"].sum())
    assert int((labels > 0).sum()) == int(masks.body.sum())
    assert set(np.unique(labels).tolist()) == {0, BODY, LUNGS, BONE}


def test_registered_segmenter_describes_segments_with_snomed() -> None:
    assert "ct_baseline" in segmenter_names()
    volume, truth = _phantom()
    result = make_segmenter("ct_baseline", {"bone_hu": 250}).segment(volume)
    assert result.labels.geometry_equal(volume)
    by_label = {s.label: s for s in result.segments}
    assert by_label["Lungs"].term.property_type.value == "39607008"
    assert by_label["Bone"].term.property_type.value == "272673000"
    assert by_label["Body"].term.property_type.value == "38266002"
    assert all(s.term.property_type.scheme_designator == "SCT" for s in result.segments)
    assert np.array_equal(np.asarray(result.mask(BONE).array), truth["bone"])
    assert "250" in by_label["Bone"].algorithm_name


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="ct_baseline"):
        make_segmenter("ct_baseline", {"bone": 3})
    with pytest.raises(ProcessingError, match="body"):
        CTBaselineParams(body_hu=400, bone_hu=300)
    with pytest.raises(ProcessingError, match="empty"):
        CTBaselineParams(lung_hu=(-400, -1000))
    flat = hd.Volume.from_attributes(
        array=np.full((3, 8, 8), -1000.0),
        image_position=(0.0, 0.0, 0.0),
        image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        pixel_spacing=(1.0, 1.0),
        spacing_between_slices=1.0,
        coordinate_system="PATIENT",
    )
    with pytest.raises(ProcessingError, match="no voxel above"):
        ct_baseline_masks(flat)


@pytest.mark.shared
@pytest.mark.skipif(not CT_3SLICE.is_dir(), reason="../shared/data is absent")
def test_real_ct_series() -> None:
    from dicomstation.volumes import load_series

    loaded = load_series(sorted(CT_3SLICE.glob("*.dcm")))
    volume = loaded.volume
    masks = ct_baseline_masks(volume)
    array = np.asarray(volume.array)
    # The body is one piece, holds no outside air, and most of its voxels are soft tissue.
    assert 0.2 < masks.body.mean() < 0.9
    outside = array[~masks.body]
    assert np.median(outside) < -900
    inside = array[masks.body]
    assert -200 < np.median(inside) < 200
    # Bone is dense and inside the body; lungs (if any in these slices) are air inside it.
    assert masks.volume_ml("bone") > 1.0
    assert (array[masks.bone] >= 300).all() and not (masks.bone & ~masks.body).any()
    assert not (masks.lungs & ~masks.body).any()
    if masks.lungs.any():
        assert np.median(array[masks.lungs]) < -600
