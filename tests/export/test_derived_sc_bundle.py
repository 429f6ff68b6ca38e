"""Derived series, Secondary Capture screenshots and scene bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.sr.codedict import codes

from dicomstation import processing as proc
from dicomstation.errors import ExportError
from dicomstation.export import (
    ExportOptions,
    Overlay,
    Scene,
    SceneSegment,
    SceneSegmentation,
    SceneVolume,
    SourceSeries,
    ViewSettings,
    blend,
    build_bundle,
    build_derived_series,
    build_sc,
    draw_overlays,
    is_bundle,
    load_scene,
    read_png,
    render_mip,
    render_slice,
)
from tests.export.conftest import assert_valid


def _reload(paths: list[Path]) -> SourceSeries:
    return SourceSeries.from_files(paths)


def test_smoothed_series_is_a_valid_derived_series(ct: SourceSeries, tmp_path: Path) -> None:
    smooth = proc.gaussian_smooth(ct.volume, 1.5)
    options = ExportOptions(series_number=77, institution_name="Test Hospital")
    out = build_derived_series(
        ct, smooth, options, derivation=codes.DCM.GaussianBlur, description="Gaussian 1.5 mm"
    )
    paths = assert_valid(out, tmp_path)
    assert len(paths) == len(ct.datasets)
    first = pydicom.dcmread(paths[0])
    assert list(first.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert first.SOPClassUID == ct.first.SOPClassUID
    assert first.StudyInstanceUID == ct.first.StudyInstanceUID
    assert first.SeriesInstanceUID != ct.series_uid and first.SeriesNumber == 77
    assert first.InstitutionName == "Test Hospital"
    assert first.DerivationDescription == "Gaussian 1.5 mm"
    assert first.DerivationCodeSequence[0].CodeValue == codes.DCM.GaussianBlur.value
    assert first.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.series_uid
    (source,) = first.SourceImageSequence
    assert source.PurposeOfReferenceCodeSequence[0].CodeValue == "121322"
    source_ds = next(d for d in ct.datasets if d.SOPInstanceUID == source.ReferencedSOPInstanceUID)
    assert list(source_ds.ImagePositionPatient) == list(first.ImagePositionPatient)
    back = _reload(paths).volume.match_geometry(smooth)
    assert np.abs(back.array - smooth.array).max() <= 0.5  # HU stored as integers


def test_narrow_float_range_is_rescaled_not_rounded(ct: SourceSeries, tmp_path: Path) -> None:
    probability = ct.volume.with_array((ct.volume.array + 1000) / 2000)  # 0 .. 0.95
    paths = assert_valid(build_derived_series(ct, probability, description="scaled"), tmp_path)
    back = _reload(paths).volume.match_geometry(probability)
    assert np.abs(back.array - probability.array).max() < 1e-4


def test_resampled_series_has_its_own_geometry(ct: SourceSeries, tmp_path: Path) -> None:
    resampled = proc.resample(ct.volume, (1.0, 1.5, 1.5))
    out = build_derived_series(
        ct, resampled, derivation=codes.DCM.SpatialResampling, description="1 x 1.5 x 1.5 mm"
    )
    paths = assert_valid(out, tmp_path)
    assert len(paths) == resampled.spatial_shape[0]
    back = _reload(paths).volume
    assert np.allclose(sorted(back.spacing), sorted(resampled.spacing))
    assert np.allclose(np.abs(back.match_geometry(resampled).array - resampled.array).max(), 0)


def test_derived_rejects_other_frames_of_reference(ct: SourceSeries) -> None:
    import highdicom as hd

    other = hd.Volume(np.zeros((2, 2, 2)), np.eye(4), "PATIENT", frame_of_reference_uid="1.2.3")
    with pytest.raises(ExportError, match="frame of reference"):
        build_derived_series(ct, other)


@pytest.mark.parametrize("kind", ["slice", "mip", "png"])
def test_screenshots_are_valid_secondary_captures(
    ct: SourceSeries, tmp_path: Path, kind: str
) -> None:
    mask = proc.threshold(ct.volume, 250, 350)
    if kind == "slice":
        rendering = render_slice(ct.volume, window=(40, 400), overlays=[Overlay(mask, (255, 0, 0))])
    elif kind == "mip":
        rendering = render_mip(ct.volume, axis=1)
    else:
        picture = np.zeros((30, 41, 3), dtype=np.uint8)
        picture[..., 1] = 200
        Image.fromarray(picture).save(tmp_path / "shot.png")
        rendering = read_png(tmp_path / "shot.png")
    sc = build_sc(rendering, ct, ExportOptions(series_description=f"Shot {kind}"))
    (path,) = assert_valid([sc], tmp_path / "out")
    back = pydicom.dcmread(path)
    assert np.array_equal(back.pixel_array, rendering.pixels)
    assert back.StudyInstanceUID == ct.first.StudyInstanceUID
    assert back.SeriesDescription == f"Shot {kind}"
    referenced = {item.ReferencedSOPInstanceUID for item in back.SourceImageSequence}
    assert referenced <= {ds.SOPInstanceUID for ds in ct.datasets}
    assert len(referenced) == (1 if kind == "slice" else len(ct.datasets))


def test_slice_render_shows_overlay_colour(ct: SourceSeries) -> None:
    mask = proc.threshold(ct.volume, 250, 350)
    k = int(np.argmax(mask.array.sum(axis=(1, 2))))
    rendering = render_slice(ct.volume, k, overlays=[Overlay(mask, (255, 0, 0), opacity=1.0)])
    assert np.all(rendering.pixels[mask.array[k]] == (255, 0, 0))
    with pytest.raises(ExportError):
        render_slice(ct.volume, 10_000)


def _scene(ct: SourceSeries) -> Scene:
    labels = np.zeros(ct.volume.spatial_shape, dtype=np.uint8)
    labels[proc.threshold(ct.volume, 250, 350).array] = 1
    labels[proc.threshold(ct.volume, 100, 200).array] = 2
    segmentation = SceneSegmentation(
        "Spheres",
        ct.volume.with_array(labels),
        (SceneSegment(1, "Bright", (255, 0, 0)), SceneSegment(2, "Middle", (0, 0, 255))),
    )
    volumes = (
        SceneVolume("CT", ct.volume, ct.series_uid),
        SceneVolume("Smoothed", proc.gaussian_smooth(ct.volume, 1.0)),
        SceneVolume("Resampled", proc.resample(ct.volume, (1.0, 1.0, 1.0))),
    )
    view = ViewSettings(
        layout="four-up",
        background="CT",
        foreground="Smoothed",
        foreground_opacity=0.3,
        window=(40.0, 400.0),
        slice_index=9,
        cursor_mm=(1.5, -2.0, 18.0),
    )
    return Scene(volumes, (segmentation,), view)


def test_bundle_reloads_into_the_same_scene(ct: SourceSeries, tmp_path: Path) -> None:
    scene = _scene(ct)
    bundle = build_bundle(scene, ct, ExportOptions(series_description="Session"))
    (path,) = assert_valid([bundle], tmp_path)
    back = pydicom.dcmread(path)
    assert is_bundle(back) and back.SeriesDescription == "Session"
    assert back.StudyInstanceUID == ct.first.StudyInstanceUID
    reloaded = load_scene(back)
    assert reloaded.view == scene.view
    # the picture is the view: CT slice 9, smoothed CT at 30 %, label maps on top
    shown = render_slice(ct.volume, 9, window=(40.0, 400.0))
    shown = blend(shown, render_slice(scene.volumes[1].volume, 9), 0.3)
    labels = scene.segmentations[0].labelmap
    overlays = [
        Overlay(labels.with_array(labels.array == s.number), s.color, 0.5)
        for s in scene.segmentations[0].segments
    ]
    assert np.array_equal(back.pixel_array, draw_overlays(shown, overlays).pixels)
    for got, want in zip(reloaded.volumes, scene.volumes, strict=True):
        assert (got.name, got.series_uid) == (want.name, want.series_uid)
        assert np.array_equal(got.volume.affine, want.volume.affine)
        assert got.volume.frame_of_reference_uid == want.volume.frame_of_reference_uid
        assert got.volume.dtype == want.volume.dtype
        assert np.array_equal(got.volume.array, want.volume.array)
    (seg,) = reloaded.segmentations
    assert seg.segments == scene.segmentations[0].segments
    assert np.array_equal(seg.labelmap.array, scene.segmentations[0].labelmap.array)


def test_damaged_or_missing_bundles_are_reported(ct: SourceSeries, tmp_path: Path) -> None:
    plain = build_sc(render_mip(ct.volume), ct)
    assert not is_bundle(plain)
    with pytest.raises(ExportError, match="no dicomstation scene bundle"):
        load_scene(plain)
    bundle = build_bundle(_scene(ct), ct)
    block = bundle.private_block(0x0099, "DICOMSTATION SCENE BUNDLE")
    block[0x04].value = block[0x04].value[:1000]
    with pytest.raises(ExportError, match="truncated"):
        load_scene(bundle)
    with pytest.raises(ExportError):
        build_bundle(Scene(()), ct)


@pytest.mark.parametrize("resampled", [False, True])
def test_parametric_map_is_valid_and_round_trips(
    ct: SourceSeries, tmp_path: Path, resampled: bool
) -> None:
    import highdicom as hd

    from dicomstation.export import build_parametric_map

    volume = proc.gaussian_smooth(ct.volume, 1.0)
    if resampled:
        volume = proc.resample(volume, (3.0, 1.5, 1.5))
    pm = build_parametric_map(ct, volume, ExportOptions(series_number=12), description="smooth")
    (path,) = assert_valid([pm], tmp_path)
    back = hd.imread(path)
    assert back.SeriesNumber == 12 and back.StudyInstanceUID == ct.first.StudyInstanceUID
    assert back.NumberOfFrames == volume.spatial_shape[0]
    values = back.get_volume().match_geometry(volume, tol=1e-3)
    assert np.allclose(values.array, volume.array.astype(np.float32))
    mapping = back.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "[hnsf'U]"
