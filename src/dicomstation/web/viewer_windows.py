"""Default display windows for the workstation viewer.

CT opens with a window chosen from Body Part Examined (brain for a head, lung or
mediastinum for a chest), else a soft-tissue window, never a brain window for
every CT. Other modalities (MR, PT, US...) open with the 1st to 99th percentile of
their values, so a few bright voxels do not squash the image as min-max does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DefaultWindow", "default_window"]

_CT_BY_BODY_PART: dict[str, tuple[str, float, float]] = {
    "HEAD": ("brain", 40.0, 80.0),
    "BRAIN": ("brain", 40.0, 80.0),
    "SKULL": ("bone", 400.0, 1800.0),
    "LUNG": ("lung", -600.0, 1500.0),
    "CHEST": ("mediastinum", 50.0, 350.0),
    "THORAX": ("mediastinum", 50.0, 350.0),
}
_SOFT_TISSUE = ("soft tissue", 40.0, 400.0)
_MAX_SAMPLES = 1_000_000


@dataclass(frozen=True)
class DefaultWindow:
    """A window (centre, width) and where it came from, for the UI to show."""

    center: float
    width: float
    source: str

    def as_json(self) -> dict[str, float | str]:
        """``{"center", "width", "source"}``."""
        return {"center": self.center, "width": self.width, "source": self.source}


def default_window(
    modality: str, array: npt.NDArray[np.generic], body_part: str = ""
) -> DefaultWindow:
    """The window a volume opens with (see the module docstring)."""
    if modality.upper() == "CT":
        name, center, width = _CT_BY_BODY_PART.get(body_part.strip().upper(), _SOFT_TISSUE)
        known = body_part.strip().upper() in _CT_BY_BODY_PART
        return DefaultWindow(center, width, f"CT {name}" + (f" ({body_part})" if known else ""))
    flat = np.asarray(array).ravel()
    if flat.size == 0:
        return DefaultWindow(0.0, 1.0, "empty")
    sample = flat[:: max(1, flat.size // _MAX_SAMPLES)].astype(np.float64)
    low, high = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    if high <= low:
        low, high = float(sample.min()), float(sample.max())
    width = max(high - low, 1.0)
    return DefaultWindow(round(low + width / 2, 3), round(width, 3), "percentiles 1-99")
