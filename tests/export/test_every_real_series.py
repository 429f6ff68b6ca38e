"""Every export kind on every image series of ../shared/data that loads: 0 dciodvfy errors.

One object per kind per series (derived: its first and last image), from the
series' own volume with a small box mask, so the run stays short. A builder may
refuse a series only with an ExportError that names one of the documented
reasons (colour volume, no frame of reference, no study/series UID, multi-frame
or non-planar source for a derived series); anything else, and any dciodvfy error, fails the test.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicomstation import processing as proc
from dicomstation.errors import ExportError, LoadError
from dicomstation.export import (
    Scene,
    SceneVolume,
    Segment,
    SourceSeries,
    build_bundle,
    build_derived_series,
    build_parametric_map,
    build_sc,
    build_seg,
    build_sr,
    render_slice,
    write_datasets,
)
from tests.export.realseries import RealSeries, real_series

pytestmark = pytest.mark.shared

#: The reasons a builder may give for not exporting a series.
REFUSALS = (
    "is not a scalar volume",
    "has no Frame of Reference UID",
    "is multi-frame; derived export needs single-frame images",
    "has no patient geometry in its IOD",
    "cannot export from it",  # no Study/Series Instance UID
)
KINDS = ("seg", "sr", "sc", "bundle", "derived", "pm")


def _errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, timeout=120, check=False)
    text = (run.stdout + run.stderr).decode("latin-1")
    return [line for line in text.splitlines() if line.startswith("Error")]


def _box(volume: object) -> object:
    """A small box mask in the middle of the volume (a few voxels per slice)."""
    shape = volume.spatial_shape  # type: ignore[attr-defined]
    mask = np.zeros(shape, dtype=bool)
    centre = [s // 2 for s in shape]
    mask[tuple(slice(c, c + max(1, s // 8)) for c, s in zip(centre, shape, strict=True))] = True
    return volume.with_array(mask)  # type: ignore[attr-defined]


def _builders(source: SourceSeries) -> dict[str, Callable[[], list[Dataset]]]:
    volume = source.volume
    mask = _box(volume)
    made: dict[str, Dataset] = {}

    def seg() -> list[Dataset]:
        made["seg"] = build_seg(source, [Segment("Box", mask)])  # type: ignore[arg-type]
        return [made["seg"]]

    def sr() -> list[Dataset]:
        if "seg" not in made:
            seg()
        stats = proc.segment_statistics(volume, {1: mask})  # type: ignore[dict-item]
        return [build_sr(made["seg"], source, stats)]  # type: ignore[arg-type]

    def derived() -> list[Dataset]:
        images = build_derived_series(source, volume)
        return [images[0], images[-1]] if len(images) > 1 else images

    return {
        "seg": seg,
        "sr": sr,
        "sc": lambda: [build_sc(render_slice(volume), source)],
        "bundle": lambda: [build_bundle(Scene((SceneVolume("v", volume),)), source)],
        "derived": derived,
        "pm": lambda: [build_parametric_map(source, volume)],
    }


def _export_all(series: RealSeries, folder: Path) -> tuple[list[str], list[Path], set[str]]:
    """Problems, written files and the kinds exported for one series."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            source = SourceSeries.from_files(list(series.files))
        except (LoadError, ExportError) as exc:
            refused = any(reason in str(exc) for reason in REFUSALS)
            return ([] if refused or isinstance(exc, LoadError) else [f"{exc}"]), [], set()
        problems, paths, done = [], [], set()
        for kind, build in _builders(source).items():
            try:
                datasets = build()
            except ExportError as exc:
                if not any(reason in str(exc) for reason in REFUSALS):
                    problems.append(f"{series.name} {kind}: {exc}")
                continue
            except Exception as exc:  # a crash is a defect, whatever it is
                problems.append(f"{series.name} {kind}: {type(exc).__name__}: {exc}")
                continue
            paths.extend(write_datasets(datasets, folder / kind))
            done.add(kind)
    return problems, paths, done


def test_every_export_of_every_real_series_is_valid(shared_data: Path, tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    every = real_series(shared_data)
    problems: list[str] = []
    exported: dict[str, set[str]] = {}
    files: list[tuple[str, Path]] = []
    for n, series in enumerate(every):
        found, paths, done = _export_all(series, tmp_path / str(n))
        problems += found
        exported[series.name] = done
        files += [(series.name, p) for p in paths]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for (name, path), errors in zip(
            files, pool.map(_errors, [p for _, p in files]), strict=True
        ):
            problems += [f"{name} {path.parent.name}: {e}" for e in errors]
    assert problems == [], "\n".join(problems)
    complete = [name for name, kinds in exported.items() if kinds == set(KINDS)]
    assert len(every) >= 50 and len(complete) >= 15, exported  # the data did not vanish
    for kind in KINDS:
        assert sum(kind in kinds for kinds in exported.values()) >= 15, kind
