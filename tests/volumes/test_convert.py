"""``load --to`` by the stored bytes (volumes/convert.py): the stored integers with the rescale
in scl_slope/scl_inter, read back by nibabel and SimpleITK as the loader's values; every case
that cannot be written that way falls back to the rescaled values (and says so in the file)."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.errors import LoadError
from dicomstation.volumes import examine, load, load_series, write_nifti
from dicomstation.volumes.convert import Converted, convert
from dicomstation.volumes.nifti import nifti_header
from tests.volumes.synth import make_series, oblique_orientation

_SCL = slice(112, 120)  # scl_slope, scl_inter in the 348-byte header


def _values(path: Path) -> np.ndarray:
    """Voxels after the header's scaling, as (time, slice, row, column) or (slice, row, col)."""
    return np.asarray(nib.load(path).get_fdata()).T


def _scaling(path: Path) -> tuple[float, float]:
    data = path.read_bytes()
    data = gzip.decompress(data) if path.name.endswith(".gz") else data
    header = np.frombuffer(data[_SCL], dtype="<f4")
    return float(header[0]), float(header[1])


def _convert(files: list[Path], out: Path, **options: bool) -> Converted:
    return convert(examine(files)[0], out, **options)


def test_ct_is_written_as_stored_int16_with_scl_inter(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=6, orientation=oblique_orientation())
    loaded = load_series(files)
    result = _convert(files, tmp_path / "x.nii")
    out = tmp_path / "x.nii"
    assert _scaling(out) == (1.0, -1024.0)
    assert result.dtype == np.int16 and result.scaling == (1.0, -1024.0)
    assert out.stat().st_size == 352 + 6 * 12 * 10 * 2  # 2 bytes per voxel, no float copy
    np.testing.assert_array_equal(_values(out), loaded.volume.array)
    image = sitk.ReadImage(str(out))  # another reader applies scl_slope/scl_inter too
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), loaded.volume.array)
    np.testing.assert_allclose(image.GetOrigin(), loaded.origin, atol=1e-4)
    # the voxel bytes are the files' stored pixel bytes, in slice order
    stored = [pydicom.dcmread(s.path).PixelData for s in loaded.slice_sources]
    assert out.read_bytes()[352:] == b"".join(stored)


def test_header_is_the_unscaled_one_but_for_scl(tmp_path: Path) -> None:
    """Geometry, dims, datatype: the bytes our nibabel-equal writer gives, only scl differs."""
    files = make_series(tmp_path / "s", n=5, orientation=oblique_orientation(30, -15))
    loaded = load_series(files)
    _convert(files, tmp_path / "raw.nii")
    stored = np.zeros((5, 12, 10), dtype=np.int16)
    write_nifti(loaded, tmp_path / "ref.nii")
    ref_header = (tmp_path / "ref.nii").read_bytes()[:348]
    ours = (tmp_path / "raw.nii").read_bytes()[:352]
    assert ours[:112] == ref_header[:112] and ours[120:348] == ref_header[120:]
    assert ours[348:] == b"\0\0\0\0"
    expected = nifti_header((10, 12, 5), stored.dtype, nib.load(tmp_path / "ref.nii").affine)
    assert ours[:112] == expected[:112]


def test_apply_rescale_writes_the_values(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4)
    loaded = load_series(files)
    result = _convert(files, tmp_path / "v.nii", apply_rescale=True)
    assert _scaling(tmp_path / "v.nii") == (1.0, 0.0)
    assert result.dtype == loaded.volume.array.dtype
    np.testing.assert_array_equal(_values(tmp_path / "v.nii"), loaded.volume.array)


def test_exact_fractional_slope_is_kept_in_the_header(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4, slope=0.5, intercept=-10.25)
    loaded = load_series(files)
    assert loaded.volume.array.dtype == np.float32
    _convert(files, tmp_path / "x.nii")
    assert _scaling(tmp_path / "x.nii") == (0.5, -10.25)
    assert nib.load(tmp_path / "x.nii").get_data_dtype() == np.int16
    np.testing.assert_array_equal(_values(tmp_path / "x.nii"), loaded.volume.array)


@pytest.mark.parametrize(
    ("slope", "intercept"), [(2.36166056166056, 0.0), (1.0, 0.1), (1.0, 16777217.0)]
)
def test_rescale_not_exact_in_float32_writes_rescaled_values(
    tmp_path: Path, slope: float, intercept: float
) -> None:
    files = make_series(tmp_path / "s", n=4, slope=slope, intercept=intercept)
    loaded = load_series(files)
    result = _convert(files, tmp_path / "x.nii")
    assert result.scaling == (1.0, 0.0) and _scaling(tmp_path / "x.nii") == (1.0, 0.0)
    np.testing.assert_array_equal(_values(tmp_path / "x.nii"), loaded.volume.array)


@pytest.mark.parametrize("name", ["x.nii", "x.nii.gz"])
def test_per_slice_slopes_and_apply_rescale_write_float32_values(tmp_path: Path, name: str) -> None:
    """Float values (slopes differ per slice; an exact slope with --apply-rescale): the
    loader's float32 values, frame by frame."""
    files = make_series(tmp_path / "s", n=5, slope=0.5, intercept=-3.0)
    ds = pydicom.dcmread(files[3])
    ds.RescaleSlope = 2.36166056166056
    ds.save_as(files[3])
    mixed = load_series(files)
    assert _convert(files, tmp_path / name).dtype == np.float32
    assert _scaling(tmp_path / name) == (1.0, 0.0)
    np.testing.assert_array_equal(_values(tmp_path / name), mixed.volume.array)
    exact = make_series(tmp_path / "e", n=3, slope=0.5, intercept=-3.0)
    result = _convert(exact, tmp_path / f"a{name}", apply_rescale=True)
    assert result.dtype == np.float32 and result.scaling == (1.0, 0.0)
    np.testing.assert_array_equal(_values(tmp_path / f"a{name}"), load_series(exact).volume.array)


def test_per_slice_rescale_writes_rescaled_values(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4)
    ds = pydicom.dcmread(files[1])
    ds.RescaleIntercept = -1000
    ds.save_as(files[1])
    loaded = load_series(files)
    _convert(files, tmp_path / "x.nii")
    assert _scaling(tmp_path / "x.nii") == (1.0, 0.0)
    np.testing.assert_array_equal(_values(tmp_path / "x.nii"), loaded.volume.array)


def test_gzip_holds_the_same_bytes(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4)
    _convert(files, tmp_path / "x.nii")
    _convert(files, tmp_path / "x.nii.gz")
    assert (
        gzip.decompress((tmp_path / "x.nii.gz").read_bytes()) == (tmp_path / "x.nii").read_bytes()
    )


def test_time_series(tmp_path: Path) -> None:
    files = []
    for t in (1, 2, 3):
        files += make_series(
            tmp_path / "s", n=4, prefix=f"t{t}", series_uid="1.2.3.4",
            extra={"TemporalPositionIdentifier": t},
        )  # fmt: skip
    loaded = load_series(files)
    _convert(files, tmp_path / "x.nii")
    assert nib.load(tmp_path / "x.nii").shape == (10, 12, 4, 3)
    np.testing.assert_array_equal(_values(tmp_path / "x.nii"), loaded.array_4d())


def test_resampled_stacks_are_decoded(tmp_path: Path) -> None:
    """--equidistant with a gap and --correct-tilt with a tilt: resampled, not stored bytes."""
    gap = make_series(tmp_path / "gap", n=4, spacing=[2.5, 5.0, 2.5])
    tilt = make_series(tmp_path / "tilt", n=4, tilt_mm_per_slice=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for files, option, slices in ((gap, "equidistant", 5), (tilt, "correct_tilt", 4)):
            result = _convert(files, tmp_path / f"{option}.nii", **{option: True})
            assert result.shape[1] == slices and result.dtype == np.float32
            assert _scaling(tmp_path / f"{option}.nii") == (1.0, 0.0)
        plain = _convert(gap, tmp_path / "gap.nii")  # kept as stored, warned
    assert plain.scaling == (1.0, -1024.0) and plain.shape[1] == 4
    assert any("missing slices" in w for w in plain.fields["warnings"])


def test_truncated_file_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4)
    files[2].write_bytes(files[2].read_bytes()[:-10])
    out = tmp_path / "x.nii"
    result = CliRunner().invoke(app, ["load", str(tmp_path / "s"), "--to", str(out)])
    assert result.exit_code == 3, result.output
    assert files[2].name in result.output.replace("\n", "")
    assert not out.exists() and list(tmp_path.glob(".x.nii*")) == []


def test_nrrd_unknown_suffix_and_unwritable_folder(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=3)
    loaded = load_series(files)
    result = _convert(files, tmp_path / "v.nrrd")
    assert result.scaling == (1.0, 0.0)
    data, _header = nrrd.read(str(tmp_path / "v.nrrd"))
    np.testing.assert_array_equal(data.T, loaded.volume.array)
    with pytest.raises(LoadError, match="unknown volume format"):
        _convert(files, tmp_path / "v.img")
    runner = CliRunner()
    missing = tmp_path / "no" / "such" / "x.nii"
    result = runner.invoke(app, ["load", str(tmp_path / "s"), "--to", str(missing)])
    assert result.exit_code == 3 and "cannot write" in result.output, result.output
    assert str(missing) in result.output.replace("\n", "")


def test_cli_default_and_apply_rescale(tmp_path: Path) -> None:
    files = make_series(tmp_path / "s", n=4)
    loaded = load_series(files)
    runner = CliRunner()
    plain = runner.invoke(app, ["load", str(tmp_path / "s"), "--to", str(tmp_path / "a.nii")])
    assert plain.exit_code == 0, plain.output
    assert "scl_slope_inter: [1.0, -1024.0]" in plain.output and "dtype: int16" in plain.output
    scaled = runner.invoke(
        app, ["load", str(tmp_path / "s"), "--to", str(tmp_path / "b.nii"), "--apply-rescale"]
    )
    assert scaled.exit_code == 0 and "scl_slope_inter: [1.0, 0.0]" in scaled.output
    for name in ("a.nii", "b.nii"):
        np.testing.assert_array_equal(_values(tmp_path / name), loaded.volume.array)


@pytest.mark.shared
def test_shared_series_written_from_stored_bytes_equal_the_loader(
    shared_data: Path, tmp_path: Path
) -> None:
    """Real series: a GE CT (intercept -1024) and a GE fMRI (4D) from their stored bytes, the
    Philips MPRAGE (slope not exact in float32) as rescaled values: after scaling, the file
    holds the loader's values on the loader's affine (which test_reference checks)."""
    mprage = tmp_path / "mprage"
    mprage.mkdir()
    for gz in sorted((shared_data / "dcm_qa_philips_enh/In/cl_mprage_1301_no_ref").glob("*.gz")):
        (mprage / gz.name.removesuffix(".gz")).write_bytes(gzip.decompress(gz.read_bytes()))
    cases = {
        "ct": (shared_data / "dcmqi_ct_seg_sr/ct-3slice", (1.0, -1024.0)),
        "fmri": (shared_data / "dcm_qa_nih/In/20180918GE/mr_0004", None),
        "mprage": (mprage, (1.0, 0.0)),
    }
    for name, (folder, scaling) in cases.items():
        out, ref = tmp_path / f"{name}.nii", tmp_path / f"{name}_ref.nii"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loadable = examine(sorted(f for f in folder.iterdir() if f.is_file()))[0]
            result = convert(loadable, out)
            write_nifti(load(loadable), ref)
        if scaling is not None:
            assert result.scaling == scaling, name
        assert nib.load(out).get_data_dtype().kind == ("f" if name == "mprage" else "i"), name
        np.testing.assert_allclose(nib.load(out).affine, nib.load(ref).affine, atol=1e-6)
        np.testing.assert_array_equal(_values(out), _values(ref), err_msg=name)


# Peak RSS from /proc (VmHWM): ru_maxrss would include the parent's peak from before exec.
_RSS_PROBE = """
import sys
def peak():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
from dicomstation.cli.main import app
import dicomstation.volumes.convert, numpy  # imports first: what grows after them is the work
base = peak()
sys.argv = ["dicomstation", "load", *sys.argv[1:]]
try:
    app()
except SystemExit as exc:
    assert not exc.code, exc.code
print("GROWTH", peak() - base)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
@pytest.mark.parametrize(("slope", "kind"), [(1.0, "stored bytes"), (2.36166056166056, "float32")])
def test_cli_holds_no_volume_sized_array(tmp_path: Path, slope: float, kind: str) -> None:
    """The whole command's peak memory grows by far less than the volume it writes (a
    20 MiB int16 stack; 40 MiB as float32): frames go to the file one at a time."""
    import subprocess
    import sys

    make_series(tmp_path / "s", n=40, rows=512, cols=512, slope=slope)
    out = tmp_path / "x.nii"
    run = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(tmp_path / "s"), "--to", str(out)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    growth = int(run.stdout.split("GROWTH")[-1])
    written = out.stat().st_size - 352
    assert written == 40 * 512 * 512 * (2 if kind == "stored bytes" else 4), kind
    assert growth < written / 4, (kind, growth, written)


def test_copy_through_a_buffer_where_the_kernel_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """copy_file_range refused (EXDEV: output on another file system of an older kernel):
    the same bytes, copied through a buffer."""
    import errno
    import os

    files = make_series(tmp_path / "s", n=4)
    _convert(files, tmp_path / "kernel.nii")
    calls = []

    def refuse(*args: object) -> int:
        calls.append(args)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    _convert(files, tmp_path / "buffer.nii")
    assert len(calls) == 4
    assert (tmp_path / "buffer.nii").read_bytes() == (tmp_path / "kernel.nii").read_bytes()
