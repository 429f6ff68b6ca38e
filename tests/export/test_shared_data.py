"""Read SEG and SR made by other tools (dcmqi, highdicom) and align SEGs with their CT."""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import nrrd
import numpy as np
import pydicom
import pytest

from dicomstation import processing as proc
from dicomstation.errors import ExportError, GeometryWarning
from dicomstation.export import (
    Scene,
    SceneVolume,
    Segment,
    SourceSeries,
    build_bundle,
    build_derived_series,
    build_parametric_map,
    build_sc,
    build_seg,
    build_sr,
    read_seg_labelmap,
    read_seg_masks,
    read_sr_measurements,
    render_slice,
)
from tests.export.conftest import assert_valid

pytestmark = pytest.mark.shared


def _nrrd_volume(path: Path) -> hd.Volume:
    """A label map NRRD (LPS, axes column/row/slice) as a highdicom volume."""
    data, header = nrrd.read(str(path))
    directions = np.asarray(header["space directions"], dtype=float)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = directions[2], directions[1], directions[0]
    affine[:3, 3] = header["space origin"]
    return hd.Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), affine, "PATIENT")


@pytest.fixture(scope="module")
def dcmqi_ct(shared_data: Path) -> SourceSeries:
    return SourceSeries.from_files(
        sorted((shared_data / "dcmqi_ct_seg_sr/ct-3slice").glob("*.dcm"))
    )


def test_dcmqi_liver_seg_aligns_with_its_ct(shared_data: Path, dcmqi_ct: SourceSeries) -> None:
    seg = pydicom.dcmread(shared_data / "dcmqi_ct_seg_sr/seg/liver_seg.dcm")
    labels = read_seg_labelmap(seg, dcmqi_ct.volume)
    assert labels.geometry_equal(dcmqi_ct.volume)
    reference = _nrrd_volume(shared_data / "dcmqi_ct_seg_sr/seg/liver_seg.nrrd")
    expected = reference.match_geometry(dcmqi_ct.volume, tol=1e-3)
    assert int((labels.array > 0).sum()) > 1000
    assert np.array_equal(labels.array > 0, expected.array > 0)


def test_dcmqi_overlapping_segments(shared_data: Path, dcmqi_ct: SourceSeries) -> None:
    seg = pydicom.dcmread(shared_data / "dcmqi_ct_seg_sr/seg/partial_overlaps_seg.dcm")
    masks = read_seg_masks(seg, dcmqi_ct.volume)
    assert sorted(masks) == [1, 2, 3, 4, 5]
    union = np.zeros(dcmqi_ct.volume.spatial_shape, dtype=bool)
    for n in (1, 2, 3):
        layer = _nrrd_volume(shared_data / f"dcmqi_ct_seg_sr/seg/partial_overlaps-{n}.nrrd")
        union |= layer.match_geometry(dcmqi_ct.volume, tol=1e-3).array > 0
    got = np.logical_or.reduce([m.array for m in masks.values()])
    assert np.array_equal(got, union)


def test_highdicom_segs_align_with_pydicom_ct2(shared_data: Path) -> None:
    folder = shared_data / "pydicom_testfiles_subset/dicomdirtests_77654033_CT2"
    seg = hd.seg.segread(shared_data / "highdicom_seg_sr/seg_image_ct_binary.dcm")
    referenced = {  # the segmented frames' sources (the series reference names all 4)
        source.ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for source in derivation.SourceImageSequence
    }
    files = [p for p in folder.iterdir() if pydicom.dcmread(p).SOPInstanceUID in referenced]
    ct = SourceSeries.from_files(files)
    labels = read_seg_labelmap(seg, ct.volume)
    assert int(labels.array.sum()) == int((seg.pixel_array > 0).sum())
    fractional = pydicom.dcmread(shared_data / "highdicom_seg_sr/seg_image_ct_true_fractional.dcm")
    (mask,) = read_seg_masks(fractional, ct.volume).values()
    assert mask.geometry_equal(ct.volume) and mask.array.any()


def test_seg_outside_the_reference_is_an_error(shared_data: Path) -> None:
    folder = shared_data / "pydicom_testfiles_subset/dicomdirtests_77654033_CT2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)  # the series has a 202 mm gap
        ct = SourceSeries.from_files(sorted(folder.iterdir()))
    seg = pydicom.dcmread(shared_data / "highdicom_seg_sr/seg_image_ct_binary.dcm")
    with pytest.raises(ExportError, match="outside"):
        read_seg_labelmap(seg, ct.volume)


def test_read_srs_from_dcmqi_and_highdicom(shared_data: Path) -> None:
    dcmqi = read_sr_measurements(pydicom.dcmread(shared_data / "dcmqi_ct_seg_sr/sr-example/sr.dcm"))
    assert dcmqi["primary tumor"]["Volume"] == pytest.approx(33.5824)
    assert dcmqi["primary tumor"]["SUVbw (Mean)"] == pytest.approx(6.01529)
    path = shared_data / "highdicom_seg_sr/sr_document_with_multiple_groups.dcm"
    groups = read_sr_measurements(pydicom.dcmread(path))
    assert groups["Vertebra0001"]["Volume"] == 200.0
    assert groups["LungNodule0001"]["Diameter"] == 10.0


REAL_SERIES = {
    "dcmqi CT": "dcmqi_ct_seg_sr/ct-3slice/*.dcm",
    "dcmqi tiny CT (no KVP)": "dcmqi_ct_seg_sr/tiny_23x38x3/image/*.dcm",
    "Philips MR (defective header)": "dcm_qa_philips_enh/In/cl/1901_*.dcm",
    "Philips enhanced MR": "dcm_qa_philips_enh/In/enh/1901_WIP_3DpCASL_real.dcm",
}


@pytest.mark.parametrize("name", sorted(REAL_SERIES))
def test_every_export_of_real_series_is_valid(shared_data: Path, tmp_path: Path, name: str) -> None:
    """Real headers carry defects (empty type 3 sequences, empty Laterality, missing type 2
    attributes, per-frame-only pixel measures); none may reach the exported records."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        source = SourceSeries.from_files(sorted(shared_data.glob(REAL_SERIES[name])))
    volume = source.volume
    low = float(np.percentile(volume.array, 60))
    mask = proc.keep_largest_island(proc.threshold(volume, low, float(volume.array.max())))
    seg = build_seg(source, [Segment("Bright", mask)])
    stats = proc.segment_statistics(volume, {1: mask})
    datasets = [
        seg,
        build_sr(seg, source, stats),
        build_sc(render_slice(volume), source),
        build_bundle(Scene((SceneVolume("v", volume),)), source),
    ]
    if name == "Philips enhanced MR":
        with pytest.raises(ExportError, match="multi-frame"):
            build_derived_series(source, proc.gaussian_smooth(volume, 1.0))
        datasets.append(build_parametric_map(source, proc.gaussian_smooth(volume, 1.0)))
    else:
        datasets += build_derived_series(source, proc.gaussian_smooth(volume, 1.0))[:2]
    assert_valid(datasets, tmp_path)
    labels = read_seg_labelmap(seg, volume)
    assert np.array_equal(labels.array > 0, mask.array)
