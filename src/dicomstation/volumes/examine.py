"""Propose loadables for a set of files (Slicer's ``examineFiles``).

A series that mixes several volumes is split, in this order, by
(1) series, (2) image size and orientation, (3) echo and image type, and then
either kept as one 3D volume, recognised as a 4D time series (every position
seen the same number of times) or split by acquisition / temporal position.
Every loadable carries a ``reason`` and a ``confidence``; the list is sorted
best first.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence

from dicomstation.volumes.headers import read_headers
from dicomstation.volumes.model import FrameHeader, Loadable, LoadableKind

__all__ = ["POSITION_DECIMALS", "examine", "examine_frames", "position_key"]

#: Positions are compared after rounding to this many decimals (millimetres).
POSITION_DECIMALS = 3
_ORIENTATION_DECIMALS = 3

#: Attributes that may order time points, best first; (name, getter).
_TIME_KEYS: tuple[tuple[str, Callable[[FrameHeader], Hashable]], ...] = (
    ("TemporalPositionIdentifier", lambda f: f.temporal_position),
    ("TriggerTime", lambda f: f.trigger_time),
    ("AcquisitionNumber", lambda f: f.acquisition_number),
    ("AcquisitionTime", lambda f: f.acquisition_time or None),
    ("FrameNumber", lambda f: f.source.frame_number),
    ("InstanceNumber", lambda f: f.instance_number),
)


#: Time attributes whose value is shared by every slice of one time point.
_PER_VOLUME_KEYS = ("TemporalPositionIdentifier", "TriggerTime", "AcquisitionNumber")


def examine(files: Iterable[str | os.PathLike[str]]) -> list[Loadable]:
    """Propose the loadables of ``files``, best first.

    Parameters
    ----------
    files : iterable of path-like
        DICOM files or folders (searched recursively), in any order; several
        series are allowed.

    Returns
    -------
    list of Loadable
        Candidates sorted by decreasing confidence. Files that are not DICOM
        or hold no pixel data are named in every loadable's warnings.

    Raises
    ------
    LoadError
        When no file holds an image.
    """
    frames, problems = read_headers(files)
    return examine_frames(frames, problems)


def examine_frames(frames: Sequence[FrameHeader], problems: Sequence[str] = ()) -> list[Loadable]:
    """Like :func:`examine`, from headers already read."""
    warnings = list(problems)
    no_pixels = [f for f in frames if not f.has_pixel_data]
    if no_pixels:
        names = sorted({str(f.source.path) for f in no_pixels})
        warnings.append(f"{len(names)} file(s) have no pixel data and were left out: {names[:5]}")
    loadables: list[Loadable] = []
    by_series = _group(
        [f for f in frames if f.has_pixel_data], lambda f: f.series_instance_uid
    ).values()
    for series in by_series:
        loadables.extend(_examine_series(series, tuple(warnings)))
    loadables.sort(key=lambda ld: -ld.confidence)
    return loadables


def position_key(frame: FrameHeader) -> tuple[float, ...] | None:
    """Rounded ImagePositionPatient of a frame (``None`` without geometry)."""
    if frame.position is None:
        return None
    return tuple(round(v, POSITION_DECIMALS) for v in frame.position)


def _group(
    frames: Iterable[FrameHeader], key: Callable[[FrameHeader], Hashable]
) -> dict[Hashable, list[FrameHeader]]:
    groups: dict[Hashable, list[FrameHeader]] = defaultdict(list)
    for frame in frames:
        groups[key(frame)].append(frame)
    return dict(groups)


def _shape_key(frame: FrameHeader) -> Hashable:
    orientation = (
        tuple(round(v, _ORIENTATION_DECIMALS) for v in frame.orientation)
        if frame.orientation
        else None
    )
    return (frame.rows, frame.columns, frame.samples_per_pixel, orientation)


def _content_key(frame: FrameHeader) -> Hashable:
    return (frame.echo_number, frame.echo_time, frame.image_type)


def _describe_content(key: Hashable, frame: FrameHeader) -> str:
    parts = []
    if frame.echo_number is not None or frame.echo_time is not None:
        echo = frame.echo_number if frame.echo_number is not None else frame.echo_time
        parts.append(f"echo {echo}")
    if frame.image_type:
        parts.append("type " + "\\".join(frame.image_type))
    return ", ".join(parts) or str(key)


def _examine_series(frames: list[FrameHeader], warnings: tuple[str, ...]) -> list[Loadable]:
    name = frames[0].series_description or frames[0].series_instance_uid
    shapes = _group(frames, _shape_key)
    if len(shapes) > 1:
        warnings = (
            *warnings,
            f"series {name} mixes {len(shapes)} image sizes/orientations; split into subseries",
        )
    out: list[Loadable] = []
    biggest = max(len(g) for g in shapes.values())
    for shape_frames in shapes.values():
        f0 = shape_frames[0]
        shape_reason = f"{f0.rows}x{f0.columns}, orientation {_shape_key(f0)}"
        base_conf = 1.0 if len(shapes) == 1 else (0.7 if len(shape_frames) == biggest else 0.6)
        contents = _group(shape_frames, _content_key)
        for key, content_frames in contents.items():
            reason = shape_reason if len(shapes) > 1 else "all frames share size and orientation"
            conf = base_conf
            label = name
            if len(contents) > 1:
                what = _describe_content(key, content_frames[0])
                reason, conf, label = f"{reason}; {what}", min(conf, 0.8), f"{name} ({what})"
            out.extend(_stack_loadables(label, content_frames, reason, conf, warnings))
    return out


def _stack_loadables(
    name: str, frames: list[FrameHeader], reason: str, conf: float, warnings: tuple[str, ...]
) -> list[Loadable]:
    """Loadables of frames that share size, orientation and content."""
    if len(frames) == 1:
        return [Loadable(name, LoadableKind.IMAGE, tuple(frames), reason, conf, warnings)]
    positions = Counter(position_key(f) for f in frames)
    if None in positions or len(positions) == 1:
        return [_cine_or_time(name, frames, reason, conf, warnings, len(positions))]
    counts = set(positions.values())
    if counts == {1}:
        return [Loadable(name, LoadableKind.VOLUME, tuple(frames), reason, conf, warnings)]
    if len(counts) == 1:
        return _time_series(name, frames, reason, conf, warnings, counts.pop())
    return _split_duplicates(name, frames, reason, conf, warnings)


def _cine_or_time(
    name: str,
    frames: list[FrameHeader],
    reason: str,
    conf: float,
    warnings: tuple[str, ...],
    n_positions: int,
) -> Loadable:
    """Frames at a single (or unknown) position: cine, or a stack without geometry."""
    multi = len({f.source.path for f in frames}) == 1 and frames[0].number_of_frames > 1
    if multi or n_positions == 1:
        why = f"{reason}; {len(frames)} frames at one position (2D+t)"
        key = _time_key(frames)
        key = None if key == "FrameNumber" else key  # plain frame order (with FrameTime)
        return Loadable(name, LoadableKind.CINE, tuple(frames), why, conf * 0.9, warnings, key)
    note = f"{len(frames)} images without ImagePositionPatient: stacked by InstanceNumber"
    return Loadable(name, LoadableKind.VOLUME, tuple(frames), reason, conf * 0.5, (*warnings, note))


def _time_key(frames: Sequence[FrameHeader]) -> str | None:
    """First attribute whose values are distinct at every position."""
    by_pos = _group(frames, position_key)
    for keyword, getter in _TIME_KEYS:
        if all(
            None not in (vals := [getter(f) for f in group]) and len(set(vals)) == len(vals)
            for group in by_pos.values()
        ):
            return keyword
    return None


def time_getter(keyword: str) -> Callable[[FrameHeader], Hashable]:
    """Getter of a time attribute named by :func:`_time_key`."""
    return dict(_TIME_KEYS)[keyword]


def _time_series(
    name: str,
    frames: list[FrameHeader],
    reason: str,
    conf: float,
    warnings: tuple[str, ...],
    n_times: int,
) -> list[Loadable]:
    key = _time_key(frames)
    if key is None:
        return _split_duplicates(name, frames, reason, conf, warnings)
    why = f"{reason}; {n_times} time points ordered by {key}"
    series = Loadable(name, LoadableKind.TIME_SERIES, tuple(frames), why, conf * 0.9, warnings, key)
    if key not in _PER_VOLUME_KEYS:
        return [series]
    getter = time_getter(key)
    groups = _group(frames, getter)
    if len(groups) != n_times:  # the values differ between positions: no per-volume split
        return [series]
    singles = [
        Loadable(
            f"{name} ({key} {value})",
            LoadableKind.VOLUME,
            tuple(group),
            f"{reason}; one time point of {n_times}: {key} = {value}",
            conf * 0.3,
            warnings,
        )
        for value, group in sorted(groups.items(), key=lambda kv: str(kv[0]))
    ]
    return [series, *singles]


def _split_duplicates(
    name: str, frames: list[FrameHeader], reason: str, conf: float, warnings: tuple[str, ...]
) -> list[Loadable]:
    """Positions repeat unevenly: split by acquisition/temporal attributes, else warn."""
    for keyword, getter in _TIME_KEYS[:3]:
        groups = _group(frames, getter)
        if len(groups) > 1 and all(
            len({position_key(f) for f in g}) == len(g) for g in groups.values()
        ):
            return [
                Loadable(
                    f"{name} ({keyword} {value})",
                    LoadableKind.VOLUME if len(g) > 1 else LoadableKind.IMAGE,
                    tuple(g),
                    f"{reason}; {keyword} = {value}",
                    conf * 0.6,
                    warnings,
                )
                for value, g in groups.items()
            ]
    note = "duplicate slice positions that no attribute separates; duplicates are dropped"
    return [
        Loadable(name, LoadableKind.VOLUME, tuple(frames), reason, conf * 0.3, (*warnings, note))
    ]
