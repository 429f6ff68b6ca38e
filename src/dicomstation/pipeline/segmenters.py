"""The segmentation plug-in point: a :class:`Segmenter` protocol and a registry.

A segmenter takes a volume and returns a :class:`Segmentation`: a label map on
the volume's grid plus one :class:`SegmentDescription` (label, coded
terminology, colour, algorithm) per label value. Threshold, seeded region
growing and competitive grow-from-seeds are registered here; a model-based
segmenter is one module that calls :func:`register_segmenter`::

    register_segmenter("my-model", lambda params: MyModel(**params))

and pipelines then use ``segmenter = "my-model"`` without any other change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol, runtime_checkable

import highdicom as hd
import numpy as np

from dicomstation import processing as proc
from dicomstation.errors import ConfigError, ExportError, ProcessingError
from dicomstation.export.seg import PALETTE, Algorithm
from dicomstation.export.terms import Term, term
from dicomstation.pipeline.table_check import check_value

__all__ = [
    "SegmentDescription",
    "Segmentation",
    "Segmenter",
    "SegmenterFactory",
    "ThresholdSegmenter",
    "make_segmenter",
    "register_segmenter",
    "segmenter_names",
]


@dataclass(frozen=True)
class SegmentDescription:
    """What one label value of a label map means.

    Parameters
    ----------
    number : int
        The label value (1..N).
    label : str
        Segment label.
    term : Term
        Segmented property category and type (SNOMED CT).
    color : tuple of 3 int or None
        Display colour (default: the palette).
    algorithm : Algorithm
        How it was made (automatic, semiautomatic, manual).
    algorithm_name : str
        Name and parameters of the algorithm (at most 64 characters are written).
    """

    number: int
    label: str
    term: Term = field(default_factory=lambda: term("tissue"))
    color: tuple[int, int, int] | None = None
    algorithm: Algorithm = Algorithm.AUTOMATIC
    algorithm_name: str = "dicomstation"

    @property
    def display_color(self) -> tuple[int, int, int]:
        """The colour to draw it with."""
        return self.color or PALETTE[(self.number - 1) % len(PALETTE)]


@dataclass(frozen=True)
class Segmentation:
    """A segmenter's answer: a label map (uint16, the volume's geometry) and its segments."""

    labels: hd.Volume
    segments: tuple[SegmentDescription, ...]

    def mask(self, number: int) -> hd.Volume:
        """The boolean mask of one label value."""
        return self.labels.with_array(np.asarray(self.labels.array) == number)

    def masks(self) -> dict[int, hd.Volume]:
        """Every segment's mask, by number."""
        return {s.number: self.mask(s.number) for s in self.segments}

    def names(self) -> dict[int, str]:
        """Segment labels by number."""
        return {s.number: s.label for s in self.segments}

    @classmethod
    def from_mask(cls, mask: hd.Volume, segment: SegmentDescription) -> Segmentation:
        """One segment from a boolean mask."""
        array = np.asarray(mask.array).astype(bool).astype(np.uint16) * segment.number
        return cls(mask.with_array(array), (segment,))


@runtime_checkable
class Segmenter(Protocol):
    """Volume in; label map and segment descriptions out."""

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Segment ``volume`` (ProcessingError when it cannot)."""
        ...


SegmenterFactory = Callable[[Mapping[str, Any]], Segmenter]
_REGISTRY: dict[str, SegmenterFactory] = {}


def register_segmenter(name: str, factory: SegmenterFactory) -> None:
    """Make ``factory(params)`` available as segmenter ``name`` (case-insensitive)."""
    _REGISTRY[name.strip().lower()] = factory


def segmenter_names() -> list[str]:
    """The registered segmenters."""
    import_module("dicomstation.pipeline.inputs")  # registers "labelmap"
    import_module("dicomstation.pipeline.model_segmenters")  # "ct_baseline", "callable"
    return sorted(_REGISTRY)


def make_segmenter(name: str, params: Mapping[str, Any]) -> Segmenter:
    """Build a registered segmenter from its parameters (ConfigError when unknown or bad)."""
    known = ", ".join(segmenter_names())
    factory = _REGISTRY.get(name.strip().lower())
    if factory is None:
        raise ConfigError(f"unknown segmenter {name!r}; registered: {known}")
    try:
        return factory(params)
    except (TypeError, ValueError, KeyError, ExportError) as exc:
        raise ConfigError(f"segmenter {name!r}: bad parameters {dict(params)}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"segmenter {name!r}: {exc}") from None


@dataclass(frozen=True)
class ThresholdSegmenter:
    """Threshold ``[low, high]``, optionally kept where connected to seeds, then cleaned up.

    Parameters
    ----------
    low, high : float
        Threshold range (inclusive).
    seeds : tuple of Seed
        Keep only the thresholded regions connected to these (seeded region growing).
    largest, fill_holes : bool
        Keep the largest island; fill enclosed holes.
    smooth_mm : float or None
        Smooth the surface with this Gaussian sigma (mm).
    label, term, color
        The segment's description.
    """

    low: float
    high: float
    seeds: tuple[proc.Seed, ...] = ()
    largest: bool = False
    fill_holes: bool = False
    smooth_mm: float | None = None
    label: str = "Segment"
    term: Term = field(default_factory=lambda: term("tissue"))
    color: tuple[int, int, int] | None = None

    def mask(self, volume: hd.Volume) -> hd.Volume:
        """The boolean mask of the one segment."""
        if self.seeds:
            mask = proc.region_grow(volume, self.seeds, self.low, self.high)
        else:
            mask = proc.threshold(volume, self.low, self.high)
        if self.largest:
            mask = proc.keep_largest_island(mask)
        if self.fill_holes:
            mask = proc.fill_holes(mask)
        if self.smooth_mm:
            mask = proc.smooth_mask(mask, self.smooth_mm)
        return mask

    def describe(self) -> str:
        """A one-line description of the algorithm and its parameters."""
        steps = [f"threshold {self.low:g}..{self.high:g}"]
        steps += ["seeded region growing"] if self.seeds else []
        steps += ["largest island"] if self.largest else []
        steps += ["fill holes"] if self.fill_holes else []
        steps += [f"smooth {self.smooth_mm:g} mm"] if self.smooth_mm else []
        return "dicomstation " + ", ".join(steps)

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Segment ``volume`` into one segment."""
        algorithm = Algorithm.SEMIAUTOMATIC if self.seeds else Algorithm.AUTOMATIC
        description = SegmentDescription(
            1, self.label, self.term, self.color, algorithm, self.describe()[:64]
        )
        return Segmentation.from_mask(self.mask(volume), description)


@dataclass(frozen=True)
class SeedsSegmenter:
    """Competitive grow-from-seeds: labelled seed points grow until they meet.

    Parameters
    ----------
    seeds : tuple of (Seed, int)
        Seed points and the label each one grows.
    labels : mapping of int to (str, Term)
        Label and term per label value (default ``Segment N``, tissue).
    """

    seeds: tuple[tuple[proc.Seed, int], ...]
    labels: Mapping[int, tuple[str, Term]] = field(default_factory=dict)

    def segment(self, volume: hd.Volume) -> Segmentation:
        """Grow every seed's label over ``volume``."""
        if not self.seeds:
            raise ProcessingError("grow from seeds needs at least one labelled seed")
        markers = np.zeros(volume.spatial_shape, dtype=np.uint16)
        for seed, number in self.seeds:
            markers[seed.index(volume)] = number
        grown = proc.grow_from_seeds(volume, volume.with_array(markers))
        numbers = sorted({number for _seed, number in self.seeds})
        segments = tuple(
            SegmentDescription(
                n,
                *self.labels.get(n, (f"Segment {n}", term("tissue"))),
                algorithm=Algorithm.SEMIAUTOMATIC,
                algorithm_name="dicomstation grow from seeds",
            )
            for n in numbers
        )
        return Segmentation(grown.with_array(np.asarray(grown.array).astype(np.uint16)), segments)


def _seeds(raw: Sequence[Any], patient: bool) -> tuple[proc.Seed, ...]:
    return tuple(proc.Seed(float(s[0]), float(s[1]), float(s[2]), patient) for s in raw)


#: The threshold segmenter's parameters and their TOML types (``threshold`` is required).
_THRESHOLD_PARAMS: dict[str, Any] = {
    "threshold": list[float],
    "seeds": list[list[float]],
    "seeds_mm": list[list[float]],
    "largest": bool,
    "fill_holes": bool,
    "smooth_mm": float | None,
    "label": str,
    "term": str,
    "color": list[int],
}


def _checked_params(params: Mapping[str, Any], types: Mapping[str, Any], required: str) -> None:
    """ConfigError naming the parameter: unknown, missing or of the wrong type."""
    unknown = sorted(set(params) - set(types))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(types)}")
    if required not in params:
        raise ConfigError(f"params.{required} is required")
    for key, value in params.items():
        check_value(value, types[key], f"params.{key}")


def _threshold(params: Mapping[str, Any]) -> Segmenter:
    _checked_params(params, _THRESHOLD_PARAMS, "threshold")
    if len(params["threshold"]) != 2:
        raise ConfigError(f"params.threshold must be [low, high], not {params['threshold']!r}")
    low, high = (float(v) for v in params["threshold"])
    color = params.get("color")
    return ThresholdSegmenter(
        low,
        high,
        seeds=_seeds(params.get("seeds", ()), False) + _seeds(params.get("seeds_mm", ()), True),
        largest=bool(params.get("largest", False)),
        fill_holes=bool(params.get("fill_holes", False)),
        smooth_mm=float(params["smooth_mm"]) if params.get("smooth_mm") else None,
        label=str(params.get("label", "Segment")),
        term=term(str(params.get("term", "tissue"))),
        color=(int(color[0]), int(color[1]), int(color[2])) if color else None,
    )


#: grow_from_seeds: seeds are [slice, row, column, label] (mm with ``patient = true``).
_GROW_PARAMS: dict[str, Any] = {
    "seeds": list[list[float]],
    "patient": bool,
    "labels": Mapping[str, Mapping[str, str]],
}


def _grow(params: Mapping[str, Any]) -> Segmenter:
    _checked_params(params, _GROW_PARAMS, "seeds")
    if any(len(s) != 4 for s in params["seeds"]):
        raise ConfigError("params.seeds must be [slice, row, column, label] each")
    patient = bool(params.get("patient", False))
    seeds = tuple(
        (proc.Seed(float(s[0]), float(s[1]), float(s[2]), patient), int(s[3]))
        for s in params["seeds"]
    )
    labels = {
        int(k): (str(v.get("label", f"Segment {k}")), term(str(v.get("term", "tissue"))))
        for k, v in dict(params.get("labels", {})).items()
    }
    return SeedsSegmenter(seeds, labels)


register_segmenter("threshold", _threshold)
register_segmenter("region_grow", _threshold)  # threshold + seeds: connected regions only
register_segmenter("grow_from_seeds", _grow)
