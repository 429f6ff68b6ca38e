"""Cine playback in the workstation viewer: the frame rate a multi-frame (or 4D) series
should play at, taken from the file.

The order is the display intent first, then the acquisition timing:

1. Recommended Display Frame Rate (0008,2144), frames per second the modality
   recommends for display;
2. Cine Rate (0018,0040), the frames per second of the cine;
3. Frame Time Vector (0018,1065), one interval per frame (the first is 0), kept
   per frame so an irregular acquisition plays with its own rhythm;
4. Frame Time (0018,1063), the nominal milliseconds between frames;
5. the loader's time values (Trigger Time, Frame Time... in milliseconds) for a
   4D series made of separate files;
6. otherwise 10 frames per second, said so in ``source``.

Intervals are clamped to 5 ms - 10 s, so a hostile or broken header cannot make
the browser spin or stall.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dicomstation.dicomjson import values

__all__ = ["FrameTiming", "frame_timing"]

_MIN_MS, _MAX_MS = 5.0, 10_000.0
_DEFAULT_FPS = 10.0
_MS_ATTRIBUTES = frozenset(
    {"FrameTime", "TriggerTime", "FrameReferenceTime", "TemporalPositionTime"}
)


@dataclass(frozen=True)
class FrameTiming:
    """How long each frame is shown, and which attribute said so.

    Attributes
    ----------
    intervals_ms : tuple of float
        Milliseconds frame ``i`` stays on screen before frame ``i + 1``.
    source : str
        The attribute the timing came from (for the UI to show).
    """

    intervals_ms: tuple[float, ...]
    source: str

    @property
    def fps(self) -> float:
        """Mean frames per second."""
        mean = sum(self.intervals_ms) / max(len(self.intervals_ms), 1)
        return round(1000.0 / mean, 3) if mean > 0 else _DEFAULT_FPS

    def as_json(self) -> dict[str, Any]:
        """``{"frames", "fps", "intervals_ms", "source"}``."""
        return {
            "frames": len(self.intervals_ms),
            "fps": self.fps,
            "intervals_ms": [round(v, 3) for v in self.intervals_ms],
            "source": self.source,
        }


def _clamp(ms: float) -> float:
    return min(max(ms, _MIN_MS), _MAX_MS)


def _number(header: Mapping[str, Any], keyword: str) -> float | None:
    found = values(header, keyword)
    try:
        value = float(found[0]) if found else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and value > 0 else None


def _uniform(ms: float, frames: int, source: str) -> FrameTiming:
    return FrameTiming(tuple([_clamp(ms)] * frames), source)


def _vector(header: Mapping[str, Any], frames: int) -> FrameTiming | None:
    try:
        vector = [float(v) for v in values(header, "FrameTimeVector")]
    except (TypeError, ValueError):
        return None
    if len(vector) != frames or frames < 2:
        return None
    steps = [v for v in vector[1:] if v > 0]
    if not steps:
        return None
    mean = sum(steps) / len(steps)
    shown = [vector[(i + 1) % frames] or mean for i in range(frames)]
    shown[-1] = vector[1] or mean  # looping back to the first frame
    return FrameTiming(tuple(_clamp(v) for v in shown), "FrameTimeVector")


def _from_times(times: Sequence[float], attribute: str | None) -> FrameTiming | None:
    if attribute not in _MS_ATTRIBUTES or len(times) < 2:
        return None
    steps = [b - a for a, b in itertools.pairwise(times)]
    if any(s <= 0 for s in steps):
        return None
    return FrameTiming(tuple(_clamp(s) for s in [*steps, steps[0]]), f"{attribute} differences")


def frame_timing(
    header: Mapping[str, Any] | None,
    frames: int,
    times: Sequence[float] = (),
    time_attribute: str | None = None,
) -> FrameTiming:
    """The playback timing of ``frames`` frames (see the module docstring for the order).

    Parameters
    ----------
    header : mapping, optional
        DICOM JSON of the (first) source instance.
    frames : int
        Number of frames (time points) to play.
    times : sequence of float
        The loader's time value of each frame.
    time_attribute : str, optional
        The keyword ``times`` came from.
    """
    frames = max(frames, 1)
    header = header or {}
    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        rate = _number(header, keyword)
        if rate is not None:
            return _uniform(1000.0 / rate, frames, f"{keyword} {rate:g}/s")
    timing = _vector(header, frames)
    if timing is not None:
        return timing
    frame_time = _number(header, "FrameTime")
    if frame_time is not None:
        return _uniform(frame_time, frames, f"FrameTime {frame_time:g} ms")
    timing = _from_times(times, time_attribute)
    if timing is not None:
        return timing
    return _uniform(1000.0 / _DEFAULT_FPS, frames, "no frame rate in the file: 10/s")
