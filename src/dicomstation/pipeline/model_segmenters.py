"""Segmenters beyond thresholds: the classical CT baseline and a plain-callable adapter.

Registered names:

- ``ct_baseline``: body, lungs and bone of a CT by HU thresholds, morphology
  and connected components (:mod:`dicomstation.processing.ct_baseline`).
  Parameters are the fields of :class:`~dicomstation.processing.ct_baseline.CTBaselineParams`.
- ``monai_bundle``: ``path`` = a MONAI bundle directory
  (:mod:`dicomstation.segmenters.monai_bundle`; needs ``dicomstation[ai]``).
- ``callable``: any function ``f(array, spacing) -> label array`` named as
  ``function = "package.module:name"`` in a pipeline file, with ``labels`` a
  table ``{1 = {label = "Liver", term = "liver"}}``. In Python, wrap a
  function with :class:`CallableSegmenter` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.sr.codedict import codes

from dicomstation.errors import ConfigError, ProcessingError
from dicomstation.export.terms import Term, term
from dicomstation.pipeline.segmenters import (
    Segmentation,
    SegmentDescription,
    Segmenter,
    register_segmenter,
)
from dicomstation.processing.ct_baseline import (
    BODY,
    BONE,
    LUNGS,
    CTBaselineParams,
    ct_baseline_masks,
)

__all__ = ["CTBaselineSegmenter", "CallableSegmenter", "LabelFunction"]

_BODY = Term(codes.SCT.AnatomicalStructure, codes.SCT.EntireBody)

#: ``f(array (slices, rows, columns), spacing (mm, same order)) -> integer label array``.
LabelFunction = Callable[[npt.NDArray[Any], tuple[float, float, float]], npt.NDArray[Any]]


@dataclass(frozen=True)
class CTBaselineSegmenter:
    """Body, lungs and bone of a CT (see :mod:`dicomstation.processing.ct_baseline`)."""

    params: CTBaselineParams = field(default_factory=CTBaselineParams)

    def describe(self) -> str:
        """The algorithm and its thresholds, for the SEG (at most 64 characters)."""
        p = self.params
        return f"dicomstation CT baseline {p.body_hu:g}/{p.lung_hu[1]:g}/{p.bone_hu:g} HU"[:64]

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Segment ``volume`` into body (rest of the body), lungs and bone."""
        masks = ct_baseline_masks(volume, self.params)
        name = self.describe()
        segments = (
            SegmentDescription(BODY, "Body", _BODY, (177, 122, 101), algorithm_name=name),
            SegmentDescription(LUNGS, "Lungs", term("lung"), (197, 165, 145), algorithm_name=name),
            SegmentDescription(BONE, "Bone", term("bone"), (241, 214, 145), algorithm_name=name),
        )
        return Segmentation(volume.with_array(masks.labels()), segments)


@dataclass(frozen=True)
class CallableSegmenter:
    """A plain function as a segmenter.

    Parameters
    ----------
    function : LabelFunction
        Called with the volume's array and voxel spacing; returns a label map of
        the same shape (0 background, 1..N the segments).
    labels : mapping of int to (str, Term)
        The label and term of each label value the function may return.
    algorithm_name : str
        Name written in the SEG.
    """

    function: LabelFunction
    labels: Mapping[int, tuple[str, Term]]
    algorithm_name: str = "callable"

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Run the function and check its answer."""
        array = np.asarray(volume.array)
        spacing = tuple(float(s) for s in volume.spacing)
        out = np.asarray(self.function(array, (spacing[0], spacing[1], spacing[2])))
        if out.shape != array.shape[:3]:
            raise ProcessingError(
                f"segmenter {self.algorithm_name!r} returned shape {out.shape}, "
                f"expected {array.shape[:3]}"
            )
        if out.dtype.kind not in "iub":
            raise ProcessingError(
                f"segmenter {self.algorithm_name!r} returned {out.dtype}, expected integer labels"
            )
        unknown = sorted(set(np.unique(out).tolist()) - {0} - set(self.labels))
        if unknown:
            raise ProcessingError(
                f"segmenter {self.algorithm_name!r} returned labels {unknown[:5]} "
                f"not described (described: {sorted(self.labels)})"
            )
        segments = tuple(
            SegmentDescription(n, label, t, algorithm_name=self.algorithm_name[:64])
            for n, (label, t) in sorted(self.labels.items())
        )
        return Segmentation(volume.with_array(out.astype(np.uint16)), segments)


def _ct_baseline(params: Mapping[str, Any]) -> Segmenter:
    known = set(CTBaselineParams.__dataclass_fields__)
    extra = sorted(set(params) - known)
    if extra:
        raise ValueError(f"unknown parameter(s) {extra}; known: {sorted(known)}")
    values = dict(params)
    if "lung_hu" in values:
        low, high = (float(v) for v in values["lung_hu"])
        values["lung_hu"] = (low, high)
    return CTBaselineSegmenter(CTBaselineParams(**values))


def _labels(raw: Mapping[Any, Any]) -> dict[int, tuple[str, Term]]:
    return {
        int(k): (str(v.get("label", f"Segment {k}")), term(str(v.get("term", "tissue"))))
        for k, v in raw.items()
    }


def _callable(params: Mapping[str, Any]) -> Segmenter:
    target = str(params["function"])
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"function {target!r} must be 'package.module:name'")
    try:
        function = getattr(import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"segmenter 'callable': cannot import {target!r}: {exc}") from None
    if not callable(function):
        raise ValueError(f"{target!r} is not callable")
    return CallableSegmenter(function, _labels(dict(params.get("labels", {}))), target)


def _monai_bundle(params: Mapping[str, Any]) -> Segmenter:
    from pathlib import Path

    from dicomstation.segmenters.monai_bundle import MonaiBundleSegmenter

    extra = sorted(set(params) - {"path"})
    if extra:
        raise ValueError(f"unknown parameter(s) {extra}; known: ['path']")
    return MonaiBundleSegmenter.open(Path(str(params["path"])).expanduser())


register_segmenter("ct_baseline", _ct_baseline)
register_segmenter("monai_bundle", _monai_bundle)
register_segmenter("callable", _callable)
