"""Processing on synthetic volumes whose right answers are known exactly."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest

from dicomstation import processing as proc
from dicomstation.errors import ProcessingError


def _volume(array: np.ndarray, spacing: tuple[float, float, float] = (2.0, 0.5, 0.5)) -> hd.Volume:
    return hd.Volume.from_attributes(
        array=array,
        image_position=(-10.0, 20.0, 5.0),
        image_orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        pixel_spacing=spacing[1:],
        spacing_between_slices=spacing[0],
        coordinate_system="PATIENT",
        frame_of_reference_uid="1.2.3.4",
    )


def _blobs() -> hd.Volume:
    """Background 0; a 5x5x5 cube of 100 (big) and a 2x2x2 cube of 100 (small); a 50 cube."""
    array = np.zeros((12, 20, 20), dtype=np.float64)
    array[1:6, 1:6, 1:6] = 100
    array[8:10, 14:16, 14:16] = 100
    array[8:11, 2:5, 12:15] = 50
    return _volume(array)


def test_threshold_is_inclusive_and_keeps_geometry() -> None:
    volume = _blobs()
    mask = proc.threshold(volume, 50, 100)
    assert mask.array.dtype == bool
    assert int(mask.array.sum()) == 125 + 8 + 27
    assert mask.geometry_equal(volume)
    assert int(proc.threshold(volume, 51, 100).array.sum()) == 133
    with pytest.raises(ProcessingError):
        proc.threshold(volume, 10, 5)


def test_region_grow_keeps_only_seeded_components() -> None:
    volume = _blobs()
    grown = proc.region_grow(volume, [proc.Seed(2, 2, 2)], 90, 110)
    assert int(grown.array.sum()) == 125
    both = proc.region_grow(volume, [proc.Seed(2, 2, 2), proc.Seed(14, 14, 8)], 90, 110)
    assert int(both.array.sum()) == 133
    with pytest.raises(ProcessingError, match="outside"):
        proc.region_grow(volume, [proc.Seed(0, 0, 0)], 90, 110)
    with pytest.raises(ProcessingError):
        proc.region_grow(volume, [proc.Seed(99, 0, 0)], 90, 110)


def test_seed_in_patient_coordinates_maps_to_the_same_voxel() -> None:
    volume = _blobs()
    x, y, z = (float(v) for v in volume.map_indices_to_reference(np.array([[3, 4, 5]]))[0])
    assert proc.Seed(x, y, z, patient=True).index(volume) == (3, 4, 5)
    assert proc.Seed.parse("5, 4 ,3").index(volume) == (3, 4, 5)
    with pytest.raises(ProcessingError):
        proc.Seed.parse("1,2")


def test_flood_uses_the_seed_value_and_tolerance() -> None:
    volume = _blobs()
    assert int(proc.flood(volume, proc.Seed(13, 3, 9), tolerance=1).array.sum()) == 27
    assert int(proc.flood(volume, proc.Seed(2, 2, 2), tolerance=1).array.sum()) == 125


def test_grow_from_seeds_assigns_every_voxel_to_a_seed_label() -> None:
    volume = _blobs()
    markers = np.zeros(volume.spatial_shape, dtype=np.uint16)
    markers[3, 3, 3] = 1
    markers[0, 19, 19] = 2
    labels = proc.grow_from_seeds(volume, volume.with_array(markers))
    assert set(np.unique(labels.array)) == {1, 2}
    assert np.all(labels.array[2:5, 2:5, 2:5] == 1)  # the boundary lies on the cube's edge
    assert 27 <= int((labels.array == 1).sum()) <= 125
    assert labels.array[9, 15, 15] == 2
    with pytest.raises(ProcessingError):
        proc.grow_from_seeds(volume, volume.with_array(np.zeros_like(markers)))


def test_keep_largest_island_and_fill_holes() -> None:
    mask = proc.threshold(_blobs(), 90, 110)
    largest = proc.keep_largest_island(mask)
    assert int(largest.array.sum()) == 125
    hollow = np.zeros((9, 9, 9), dtype=bool)
    hollow[1:8, 1:8, 1:8] = True
    hollow[3:6, 3:6, 3:6] = False
    filled = proc.fill_holes(_volume(hollow))
    assert int(filled.array.sum()) == 343
    tube = np.zeros((5, 9, 9), dtype=bool)
    tube[:, 2:7, 2:7] = True
    tube[:, 4, 4] = False  # open at both ends in 3D, closed in every slice
    assert int(proc.fill_holes(_volume(tube)).array.sum()) == int(tube.sum())
    assert int(proc.fill_holes(_volume(tube), per_slice=True).array.sum()) == 125
    empty = _volume(np.zeros((3, 3, 3), dtype=bool))
    assert not proc.keep_largest_island(empty).array.any()


def test_smooth_mask_removes_specks_and_keeps_the_body() -> None:
    array = np.zeros((10, 30, 30), dtype=bool)
    array[2:8, 5:25, 5:25] = True
    array[0, 0, 0] = True
    smoothed = proc.smooth_mask(_volume(array, (1.0, 1.0, 1.0)), 1.0)
    assert not smoothed.array[0, 0, 0]
    assert smoothed.array[5, 15, 15]
    with pytest.raises(ProcessingError):
        proc.smooth_mask(_volume(array), 0)


def test_gaussian_and_median_smoothing() -> None:
    rng = np.random.default_rng(1)
    noisy = _volume(100 + rng.normal(0, 10, (10, 20, 20)))
    smooth = proc.gaussian_smooth(noisy, 2.0)
    assert smooth.geometry_equal(noisy)
    assert float(smooth.array.std()) < float(noisy.array.std()) / 2
    assert abs(float(smooth.array.mean()) - float(noisy.array.mean())) < 1
    spike = np.zeros((5, 5, 5))
    spike[2, 2, 2] = 1000
    assert float(proc.median_smooth(_volume(spike), 3).array.max()) == 0


def test_resample_keeps_the_world_position_of_voxels() -> None:
    volume = _blobs()
    out = proc.resample(volume, (1.0, 1.0, 1.0), order=0)
    assert np.allclose(out.spacing, (1.0, 1.0, 1.0))
    assert np.allclose(out.position, volume.position)
    assert out.frame_of_reference_uid == volume.frame_of_reference_uid
    # every output voxel centre holds the value of the input voxel at the same place
    idx = np.array([[4, 6, 6], [16, 8, 3], [7, 4, 9]])
    world = out.map_indices_to_reference(idx)
    src = volume.map_reference_to_indices(world, round_output=True)
    for (k, j, i), (a, b, c) in zip(idx, src, strict=True):
        assert out.array[k, j, i] == volume.array[a, b, c]
    with pytest.raises(ProcessingError):
        proc.resample(volume, (1.0, 0.0, 1.0))


def test_segment_statistics_match_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(40, 12, (8, 16, 16))
    volume = _volume(values)
    mask = np.zeros(values.shape, dtype=bool)
    mask[2:6, 4:12, 3:9] = True
    stats = proc.segment_statistics(volume, {3: volume.with_array(mask)}, {3: "lesion"})
    (stat,) = stats
    assert stat.segment_number == 3 and stat.label == "lesion"
    assert stat.voxel_count == 4 * 8 * 6
    assert stat.volume_ml == pytest.approx(stat.voxel_count * 2.0 * 0.5 * 0.5 / 1000)
    assert stat.mean == pytest.approx(values[mask].mean())
    assert stat.std == pytest.approx(values[mask].std())
    assert (stat.minimum, stat.maximum) == (values[mask].min(), values[mask].max())


def test_segment_statistics_from_a_label_map_and_empty_segments() -> None:
    volume = _blobs()
    labels = np.zeros(volume.spatial_shape, dtype=np.uint8)
    labels[volume.array == 100] = 1
    labels[volume.array == 50] = 2
    stats = proc.segment_statistics(volume, volume.with_array(labels))
    assert [(s.segment_number, s.voxel_count, s.mean) for s in stats] == [
        (1, 133, 100),
        (2, 27, 50),
    ]
    empty = proc.segment_statistics(volume, {1: volume.with_array(np.zeros_like(labels, bool))})
    assert empty[0].voxel_count == 0 and np.isnan(empty[0].mean)
    other = _volume(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ProcessingError):
        proc.segment_statistics(volume, {1: other})
