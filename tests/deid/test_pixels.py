"""Burned-in text: refused by default; opt-in rules blank regions and record Clean Pixel Data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicomstation.deid import burned_in_reason, deidentify, load_pixel_rules
from dicomstation.deid.pixels import BUILTIN, builtin_pixel_rules
from dicomstation.errors import ConfigError, DeidentificationError
from tests.deid.synth import config

RULES = """
[[rule]]
name = "Philips EPIQ banner"
match = { Manufacturer = "philips", ManufacturerModelName = "EPIQ" }
rows = 768
columns = 1024
regions = [[0, 0, 1024, 90], [900, 700, 124, 68]]

[[rule]]
name = "Siemens S2000 banner"
match = { Manufacturer = "SIEMENS", ManufacturerModelName = "S2000" }
regions = [[0, 0, 1024, 60]]
"""


@pytest.fixture()
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


@pytest.mark.shared
@pytest.mark.parametrize(
    ("name", "boxes"),
    [
        ("GREYSCALE_IMAGE.dcm", [(0, 0, 1024, 90), (900, 700, 124, 68)]),
        ("RGB_IMAGE.dcm", [(0, 0, 1024, 60)]),
    ],
)
def test_rule_blanks_only_its_regions(
    shared_data: Path, rules: Path, name: str, boxes: list[tuple[int, int, int, int]]
) -> None:
    path = shared_data / "deid_data_us_ct" / name
    original = pydicom.dcmread(path).pixel_array
    with pytest.raises(DeidentificationError, match=f"{name}: refused: .*--pixel-rules"):
        deidentify(pydicom.dcmread(path), config(), source=str(path))
    result = deidentify(pydicom.dcmread(path), config(pixel_rules=load_pixel_rules(rules)))
    ds = result.dataset
    cleaned = ds.pixel_array
    mask = np.zeros(original.shape[:2], dtype=bool)
    for x, y, width, height in boxes:
        mask[y : y + height, x : x + width] = True
    assert not cleaned[mask].any() and original[mask].any()  # there was something to blank
    np.testing.assert_array_equal(cleaned[~mask], original[~mask])
    assert ds.BurnedInAnnotation == "NO" and result.pixel_rule
    codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113101"]


def test_suspects_and_plain_images() -> None:
    from tests.deid.synth import ct_instance

    ds = ct_instance()
    ds.PixelData = b"\x00" * 8
    assert burned_in_reason(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert burned_in_reason(ds) == "BurnedInAnnotation is YES"
    ds.BurnedInAnnotation = "NO"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    assert "secondary capture" in str(burned_in_reason(ds))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"  # whole-slide microscopy: not an SC
    assert burned_in_reason(ds) is None
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"
    assert burned_in_reason(ds) is None  # XA saying NO
    del ds.BurnedInAnnotation
    assert "angiography" in str(burned_in_reason(ds))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no \\[\\[rule\\]\\]"),
        ("[[rule]]\nregions = [[0, 0, 5, 5]]\n", "rule 0"),
        ("[[rule]]\nmatch = { Manufacturer = 'x' }\nregions = [[0, 0, 0, 5]]\n", "width"),
        ("[[rule]\n", "cannot read"),
    ],
)
def test_bad_rule_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_pixel_rules(path)
    assert str(path) in str(caught.value)


@pytest.mark.shared
def test_multiframe_jpeg_colour_cine_is_blanked_in_every_frame(
    shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / "pydicom_testfiles_subset" / "examples_ybr_color.dcm"
    rules = tmp_path / "sonosite.toml"
    rules.write_text(
        '[[rule]]\nname = "SonoSite top band"\nmatch = { Manufacturer = "SonoSite" }\n'
        "regions = [[0, 0, 320, 30]]\n"
    )
    original = pydicom.dcmread(path).pixel_array  # (30, 240, 320, 3), decoded to RGB
    result = deidentify(pydicom.dcmread(path), config(pixel_rules=load_pixel_rules(rules)))
    ds = result.dataset
    assert ds.PhotometricInterpretation == "RGB" and int(ds.NumberOfFrames) == 30
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"  # stored uncompressed
    cleaned = pydicom.dcmread(_roundtrip(result, tmp_path)).pixel_array
    assert cleaned.shape == original.shape and not cleaned[:, :30].any()
    np.testing.assert_array_equal(cleaned[:, 30:], original[:, 30:])


def _roundtrip(result: object, tmp_path: Path) -> Path:
    from dicomstation.deid import encode

    out = tmp_path / "out.dcm"
    out.write_bytes(encode(result))  # type: ignore[arg-type]
    return out


@pytest.mark.shared
@pytest.mark.parametrize(("name", "rows"), [("GREYSCALE_IMAGE.dcm", 49), ("RGB_IMAGE.dcm", 60)])
def test_builtin_rules_from_deid_clean_known_devices(
    shared_data: Path, name: str, rows: int
) -> None:
    path = shared_data / "deid_data_us_ct" / name
    original = pydicom.dcmread(path).pixel_array
    rules = load_pixel_rules(Path(BUILTIN))
    result = deidentify(pydicom.dcmread(path), config(pixel_rules=rules))
    cleaned = result.dataset.pixel_array
    assert not cleaned[:rows].any() and original[:rows].any()
    np.testing.assert_array_equal(cleaned[rows:], original[rows:])
    # a device no rule names is still refused
    other = pydicom.dcmread(path)
    other.ManufacturerModelName = "UNKNOWN-MODEL-9"
    with pytest.raises(DeidentificationError, match="UNKNOWN-MODEL-9"):
        deidentify(other, config(pixel_rules=rules))


def test_builtin_rules_are_what_the_generator_makes_from_deid() -> None:
    rules = builtin_pixel_rules()
    assert len(rules) >= 90 and all(r.regions and r.match for r in rules)
    if importlib.util.find_spec("deid") is None:
        pytest.skip("deid is not installed (bench extra)")
    from dicomstation.deid.rulegen import OUTPUT, build

    assert build() == json.loads(OUTPUT.read_text())
