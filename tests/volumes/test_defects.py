"""Loader defects found on real series, reproduced on data made in code.

Deflated explicit VR little endian, a Modality LUT Sequence, palette colour, a
binary (1-bit) SEG, a missing slice (equidistant resampling, per-slice positions).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import DeflatedExplicitVRLittleEndian
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.errors import GeometryWarning
from dicomstation.volumes import load_series
from tests.volumes.synth import expected_array, make_series


def _rewrite(paths: list[Path], change: object) -> None:
    for path in paths:
        ds = pydicom.dcmread(path)
        change(ds)  # type: ignore[operator]
        ds.save_as(path, enforce_file_format=True)


def test_deflated_explicit_little_endian_loads(tmp_path: Path) -> None:
    paths = make_series(tmp_path, n=3, intercept=0.0)

    def deflate(ds: Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian

    _rewrite(paths, deflate)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    loaded = load_series(paths)
    np.testing.assert_array_equal(loaded.volume.array, expected_array(n=3))


def test_modality_lut_sequence_is_applied(tmp_path: Path) -> None:
    paths = make_series(tmp_path, n=3, intercept=0.0)
    table = (np.arange(1024, dtype=np.uint16) * 3 + 7).astype(np.uint16)  # value -> 3 v + 7

    def add_lut(ds: Dataset) -> None:
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.PixelRepresentation = 0
        item = Dataset()
        item.LUTDescriptor = [1024, 0, 16]
        item.ModalityLUTType = "OD"
        item.add_new(0x00283006, "US", table.tolist())  # LUTData, 16-bit entries
        ds.ModalityLUTSequence = [item]

    _rewrite(paths, add_lut)
    loaded = load_series(paths)
    stored = np.clip(expected_array(n=3), 0, 1023)
    np.testing.assert_array_equal(loaded.volume.array, table[stored])
    assert loaded.rescaled and "Modality LUT Sequence applied" in loaded.warnings


def test_palette_colour_is_expanded_to_rgb(tmp_path: Path) -> None:
    paths = make_series(tmp_path, n=2, rows=4, cols=5, intercept=0.0)
    red, green, blue = (np.arange(256) * f % 256 for f in (1, 3, 7))

    def to_palette(ds: Dataset) -> None:
        index = (np.frombuffer(ds.PixelData, np.int16) % 256).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PhotometricInterpretation, ds.PixelData = "PALETTE COLOR", index.tobytes()
        del ds.RescaleIntercept, ds.RescaleSlope
        for name, lut in zip(("Red", "Green", "Blue"), (red, green, blue), strict=True):
            keyword = f"{name}PaletteColorLookupTableDescriptor"
            ds.add_new(keyword, "US", [256, 0, 8])
            setattr(ds, f"{name}PaletteColorLookupTableData", lut.astype(np.uint8).tobytes())

    _rewrite(paths, to_palette)
    loaded = load_series(paths)
    index = expected_array(n=2, rows=4, cols=5) % 256
    assert loaded.volume.array.shape == (2, 4, 5, 3) and loaded.volume.array.dtype == np.uint8
    np.testing.assert_array_equal(loaded.volume.array[..., 1], green[index])
    np.testing.assert_array_equal(loaded.volume.array[..., 2], blue[index])
    assert "palette colour expanded to RGB" in loaded.warnings


def test_binary_seg_loads_as_uint8(tmp_path: Path) -> None:
    paths = make_series(tmp_path / "ct", n=4, rows=8, cols=8)
    sources = [pydicom.dcmread(p) for p in paths]
    for ds in sources:
        ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = "", "", "", ""
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", ""
    sources.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    mask = np.zeros((4, 8, 8), dtype=bool)
    mask[1:3, 2:6, 3:5] = True
    description = hd.seg.SegmentDescription(
        1, "box", codes.SCT.Tissue, codes.SCT.Tissue, hd.seg.SegmentAlgorithmTypeValues.MANUAL
    )
    seg = hd.seg.Segmentation(
        sources, mask, hd.seg.SegmentationTypeValues.BINARY, [description],
        hd.UID(), 5, hd.UID(), 1, "x", "x", "1", "1", omit_empty_frames=False,
    )  # fmt: skip
    seg.save_as(tmp_path / "seg.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        loaded = load_series([tmp_path / "seg.dcm"])
    assert loaded.volume.array.dtype == np.uint8
    assert int(loaded.volume.array.sum()) == int(mask.sum())


def _missing_slice_series(folder: Path) -> list[Path]:
    paths = make_series(folder, n=6, intercept=0.0)
    gone = next(p for p in paths if pydicom.dcmread(p).InstanceNumber == 4)  # slice k = 3
    gone.unlink()
    return [p for p in paths if p != gone]


def test_missing_slice_keeps_positions_and_can_be_made_equidistant(tmp_path: Path) -> None:
    paths = _missing_slice_series(tmp_path / "s")
    with pytest.warns(GeometryWarning, match="missing slices.*equidistant"):
        kept = load_series(paths)
    assert kept.volume.array.shape[0] == 5
    z = [p[2] for p in kept.slice_positions]
    assert z == pytest.approx([40.0, 42.5, 45.0, 50.0, 52.5])  # the real positions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        equal = load_series(paths, equidistant=True)
    stored = expected_array(n=6).astype(np.float32)
    assert equal.volume.array.shape[0] == 6 and equal.spacing[0] == pytest.approx(2.5)
    for k in (0, 1, 2, 4, 5):  # stored slices, each at its own position
        np.testing.assert_array_equal(equal.volume.array[k], stored[k])
        world = equal.affine_lps @ np.array([k, 0, 0, 1.0])
        assert world[2] == pytest.approx(40.0 + 2.5 * k)
    np.testing.assert_allclose(equal.volume.array[3], (stored[2] + stored[4]) / 2)
    assert any(m.startswith("equidistant") for m in equal.warnings)


def test_cli_load_equidistant_writes_the_resampled_volume(tmp_path: Path) -> None:
    _missing_slice_series(tmp_path / "s")
    out = tmp_path / "eq.nii"
    result = CliRunner().invoke(
        app, ["load", str(tmp_path / "s"), "--to", str(out), "--equidistant"]
    )
    assert result.exit_code == 0, result.output
    image = nib.load(out)
    assert image.shape[2] == 6
    assert float(nib.affines.voxel_sizes(image.affine)[2]) == pytest.approx(2.5)
