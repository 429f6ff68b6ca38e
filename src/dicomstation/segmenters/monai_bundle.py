"""A MONAI bundle as a segmenter: TorchScript model, resampled in and out of the model's grid.

A bundle directory (MONAI bundle specification) holds:

- ``configs/metadata.json``: ``network_data_format.outputs.pred.channel_def``
  names the output channels (``{"0": "background", "1": "liver"}``); an
  optional ``dicomstation_terms`` table maps channel names to dicomstation term
  names (``{"liver": "liver"}``; default: the name itself when known, else tissue);
- ``configs/inference.json``: its preprocessing transforms are read for
  ``Orientationd`` (``axcodes``), ``Spacingd`` (``pixdim``) and
  ``ScaleIntensityRanged`` (``a_min``, ``a_max``, ``b_min``, ``b_max``, ``clip``);
- ``models/model.ts``: the TorchScript network, ``(1, C, X, Y, Z) -> (1, N, X, Y, Z)``.

The volume is resampled (linear) onto a grid with the model's orientation and
spacing covering the source volume, the network runs on the CPU (no weights are
downloaded, nothing else is executed from the bundle), the argmax is taken and
resampled (nearest) back onto the source grid. torch is needed
(``pip install 'dicomstation[ai]'``); monai is not needed at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from dicomstation.errors import ConfigError, ProcessingError
from dicomstation.export.terms import TERMS, Term, term
from dicomstation.pipeline.segmenters import Segmentation, SegmentDescription

__all__ = ["BundleSpec", "MonaiBundleSegmenter", "model_grid"]

#: Direction in LPS of an axis code (MONAI/nibabel: the axis points toward it).
_LPS = {
    "R": (-1, 0, 0),
    "L": (1, 0, 0),
    "A": (0, -1, 0),
    "P": (0, 1, 0),
    "S": (0, 0, 1),
    "I": (0, 0, -1),
}


@dataclass(frozen=True)
class BundleSpec:
    """What dicomstation reads from a bundle."""

    model: Path
    axcodes: str
    pixdim: tuple[float, float, float]
    scale: tuple[float, float, float, float, bool] | None
    channels: dict[int, str]
    terms: dict[str, str]

    @classmethod
    def read(cls, root: Path) -> BundleSpec:
        """Read a bundle directory (ConfigError naming the file when it is not one)."""
        meta = _json(root / "configs" / "metadata.json")
        infer = _json(root / "configs" / "inference.json")
        model = root / "models" / "model.ts"
        if not model.is_file():
            raise ConfigError(f"MONAI bundle {root}: no TorchScript model at models/model.ts")
        try:
            raw = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
            channels = {int(k): str(v) for k, v in raw.items()}
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"{root / 'configs' / 'metadata.json'}: no network_data_format.outputs.pred"
                ".channel_def"
            ) from None
        transforms = {t.get("_target_", "").split(".")[-1]: t for t in _transforms(infer)}
        axcodes = str(transforms.get("Orientationd", {}).get("axcodes", "RAS"))
        if (
            sorted(axcodes) != sorted(set(axcodes))
            or len(axcodes) != 3
            or not set(axcodes) <= set(_LPS)
        ):
            raise ConfigError(f"MONAI bundle {root}: axcodes {axcodes!r} are not three axis codes")
        pixdim = tuple(float(p) for p in transforms.get("Spacingd", {}).get("pixdim", (0, 0, 0)))
        scale_t = transforms.get("ScaleIntensityRanged")
        scale = None
        if scale_t:
            scale = (
                float(scale_t["a_min"]),
                float(scale_t["a_max"]),
                float(scale_t.get("b_min", 0.0)),
                float(scale_t.get("b_max", 1.0)),
                bool(scale_t.get("clip", False)),
            )
        terms = {str(k): str(v) for k, v in dict(meta.get("dicomstation_terms", {})).items()}
        return cls(model, axcodes, (pixdim[0], pixdim[1], pixdim[2]), scale, channels, terms)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"MONAI bundle file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"MONAI bundle file {path}: not a JSON object")
    return data


def _transforms(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every transform table under ``preprocessing`` (a Compose's ``transforms``)."""
    pre = config.get("preprocessing", {})
    found = pre.get("transforms", []) if isinstance(pre, dict) else pre
    return [t for t in found if isinstance(t, dict)]


def model_grid(
    volume: hd.Volume, axcodes: str, pixdim: tuple[float, float, float]
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """The model's grid covering ``volume``: its affine (index -> LPS mm) and shape.

    A zero in ``pixdim`` keeps the source spacing along that axis's nearest source axis.
    """
    affine = np.asarray(volume.affine, dtype=np.float64)
    shape = np.array(volume.spatial_shape)
    dirs = np.array([_LPS[c] for c in axcodes], dtype=np.float64)  # rows: axis directions
    spacing = []
    for axis in range(3):
        if pixdim[axis] > 0:
            spacing.append(pixdim[axis])
            continue
        columns = affine[:3, :3]
        nearest = int(np.argmax(np.abs(dirs[axis] @ columns) / np.linalg.norm(columns, axis=0)))
        spacing.append(float(np.linalg.norm(columns[:, nearest])))
    corners = np.array(
        [
            [i, j, k, 1]
            for i in (0, shape[0] - 1)
            for j in (0, shape[1] - 1)
            for k in (0, shape[2] - 1)
        ]
    )
    points = (affine @ corners.T)[:3].T
    projected = points @ dirs.T
    low, high = projected.min(axis=0), projected.max(axis=0)
    size = tuple(int(np.floor((high[a] - low[a]) / spacing[a] + 1e-6)) + 1 for a in range(3))
    grid = np.eye(4)
    grid[:3, :3] = dirs.T * np.array(spacing)
    grid[:3, 3] = dirs.T @ low
    return grid, (size[0], size[1], size[2])


def _resample(
    array: npt.NDArray[Any],
    to_source: npt.NDArray[np.float64],
    shape: tuple[int, int, int],
    order: int,
) -> npt.NDArray[Any]:
    """Sample ``array`` at ``to_source @ index`` for every index of ``shape``."""
    return np.asarray(
        ndimage.affine_transform(
            array,
            to_source[:3, :3],
            offset=to_source[:3, 3],
            output_shape=shape,
            order=order,
            mode="nearest",
        )
    )


@dataclass(frozen=True)
class MonaiBundleSegmenter:
    """Segment with a MONAI bundle (see the module docstring)."""

    bundle: Path
    spec: BundleSpec

    @classmethod
    def open(cls, bundle: Path) -> MonaiBundleSegmenter:
        """Read the bundle's configuration (the model is loaded on use)."""
        return cls(bundle, BundleSpec.read(bundle))

    def segments(self) -> tuple[SegmentDescription, ...]:
        """One description per non-background channel."""
        out = []
        for number, name in sorted(self.spec.channels.items()):
            if number == 0:
                continue
            wanted = self.spec.terms.get(name, name.lower())
            found: Term = term(wanted) if wanted in TERMS else term("tissue")
            out.append(
                SegmentDescription(
                    number, name, found, algorithm_name=f"MONAI bundle {self.bundle.name}"[:64]
                )
            )
        return tuple(out)

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Resample to the model's grid, run the network, argmax, resample back."""
        array = np.asarray(volume.array, dtype=np.float32)
        if array.ndim != 3:
            raise ProcessingError(
                f"MONAI bundle {self.bundle}: needs a 3D volume, got {array.shape}"
            )
        grid, shape = model_grid(volume, self.spec.axcodes, self.spec.pixdim)
        source = np.asarray(volume.affine, dtype=np.float64)
        image = _resample(array, np.linalg.inv(source) @ grid, shape, order=1)
        if self.spec.scale:
            a_min, a_max, b_min, b_max, clip = self.spec.scale
            image = (image - a_min) / (a_max - a_min) * (b_max - b_min) + b_min
            image = np.clip(image, b_min, b_max) if clip else image
        labels = self._infer(image.astype(np.float32))
        back = _resample(labels, np.linalg.inv(grid) @ source, volume.spatial_shape, order=0)
        unknown = sorted(set(np.unique(back).tolist()) - set(self.spec.channels))
        if unknown:
            raise ProcessingError(
                f"MONAI bundle {self.bundle}: labels {unknown} not in channel_def"
            )
        return Segmentation(volume.with_array(back.astype(np.uint16)), self.segments())

    def _infer(self, image: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
        try:
            import torch
        except ImportError:
            raise ConfigError("MONAI bundles need torch: pip install 'dicomstation[ai]'") from None
        try:
            model: Any = torch.jit.load(  # type: ignore[no-untyped-call,unused-ignore]
                str(self.spec.model), map_location="cpu"
            )
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"MONAI bundle {self.bundle}: cannot load models/model.ts: {exc}"
            ) from None
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(image))[None, None])
        if logits.ndim != 5 or tuple(logits.shape[2:]) != image.shape:
            raise ProcessingError(
                f"MONAI bundle {self.bundle}: output shape {tuple(logits.shape)} does not match "
                f"the input {image.shape}"
            )
        return np.asarray(logits[0].argmax(dim=0).numpy(), dtype=np.uint16)
