"""A MONAI bundle built here (a TorchScript network whose output is known exactly) run through
the bundle adapter: orientation, spacing, the label map on the source grid, and the SEG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

torch = pytest.importorskip("torch")

from dicomstation.errors import ConfigError  # noqa: E402
from dicomstation.export.common import SourceSeries  # noqa: E402
from dicomstation.export.seg import SegmentInfo, build_seg_from_labelmap  # noqa: E402
from dicomstation.pipeline.segmenters import make_segmenter  # noqa: E402
from dicomstation.segmenters.monai_bundle import model_grid  # noqa: E402
from dicomstation.volumes import load_series  # noqa: E402
from tests.synth import ct_dataset  # noqa: E402

SIZE, SLICES, SLICE_MM = 24, 10, 2.0


class KnownNet(torch.nn.Module):  # type: ignore[misc]
    """Channel 1: intensity above 0.5 (0 HU after scaling); channel 2: the first half of
    model axis 0 (in RAS the patient's left), which wins over channel 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        background = torch.zeros_like(x)
        bright = (x - 0.5) * 10.0
        half = torch.zeros_like(x)
        half[:, :, : x.shape[2] // 2] = 100.0
        return torch.cat([background, bright, half], dim=1)


def _bundle(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    torch.jit.script(KnownNet()).save(str(root / "models" / "model.ts"))
    meta = {
        "name": "known function",
        "network_data_format": {
            "inputs": {"image": {"num_channels": 1}},
            "outputs": {"pred": {"channel_def": {"0": "background", "1": "Bone", "2": "Left"}}},
        },
        "dicomstation_terms": {"Bone": "bone", "Left": "organ"},
    }
    infer = {
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
                {"_target_": "Spacingd", "keys": "image", "pixdim": [1.0, 1.0, 1.0]},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": -1000,
                    "a_max": 1000,
                    "b_min": 0.0,
                    "b_max": 1.0,
                    "clip": True,
                },
            ],
        }
    }
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    (root / "configs" / "inference.json").write_text(json.dumps(infer))
    return root


def _series(folder: Path) -> list[Path]:
    """A CT whose HU is 500 in a box (rows 4..15, columns 3..20, slices 2..7), else -500."""
    folder.mkdir()
    study, series = "1.2.826.0.1.3680043.10.511.99.2", "1.2.826.0.1.3680043.10.511.99.3"
    paths = []
    for i in range(SLICES):
        hu = np.full((SIZE, SIZE), -500, dtype=np.int16)
        if 2 <= i < 8:
            hu[4:16, 3:21] = 500
        ds = ct_dataset(
            i, study_uid=study, series_uid=series, size=SIZE, spacing=SLICE_MM, pixels=hu + 1024
        )
        paths.append(folder / f"{i}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def test_bundle_output_lands_on_the_source_grid(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle")
    paths = _series(tmp_path / "ct")
    volume = load_series(paths).volume
    hu = np.asarray(volume.array)
    # The model's grid: RAS axes at 1 mm, covering the volume (slices 2 mm apart: 19 planes).
    grid, shape = model_grid(volume, "RAS", (1.0, 1.0, 1.0))
    assert shape == (SIZE, SIZE, (SLICES - 1) * 2 + 1)
    assert np.allclose(np.diag(grid)[:3], [-1.0, -1.0, 1.0])  # R = -x, A = -y, S = +z (LPS)
    segmenter = make_segmenter("monai_bundle", {"path": str(bundle)})
    result = segmenter.segment(volume)
    labels = np.asarray(result.labels.array)
    assert result.labels.geometry_equal(volume)
    # Known answer on the source grid: the patient's left half (LPS x large: columns 12..23)
    # is label 2; elsewhere HU > 0 is label 1.
    cols = np.arange(SIZE)[None, None, :]
    expected = np.where(cols >= SIZE // 2, 2, np.where(hu > 0, 1, 0))
    assert np.array_equal(labels, expected)
    names = {s.number: (s.label, s.term.property_type.meaning) for s in result.segments}
    assert names == {1: ("Bone", "Bone"), 2: ("Left", "Organ")}
    # The SEG references the CT frames it lies on, with their positions.
    datasets = [pydicom.dcmread(p) for p in paths]
    infos = [
        SegmentInfo(s.label, s.term.category, s.term.property_type, algorithm_name="test")
        for s in result.segments
    ]
    seg = build_seg_from_labelmap(SourceSeries.from_datasets(datasets), result.labels, infos)
    by_uid = {d.SOPInstanceUID: d for d in datasets}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert [float(v) for v in position] == [float(v) for v in by_uid[ref].ImagePositionPatient]
    assert int(seg.NumberOfFrames) >= SLICES


def test_a_bad_bundle_is_one_clear_error(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle")
    (bundle / "models" / "model.ts").unlink()
    with pytest.raises(ConfigError, match=r"model\.ts"):
        make_segmenter("monai_bundle", {"path": str(bundle)})
    with pytest.raises(ConfigError, match=r"metadata\.json"):
        make_segmenter("monai_bundle", {"path": str(tmp_path / "nowhere")})
