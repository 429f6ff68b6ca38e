"""Fixtures for export tests: a synthetic CT source series, and dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomstation.export import SourceSeries, write_datasets
from tests.export.synthetic import ct_series, phantom, write_series


def dciodvfy_errors(path: Path) -> list[str]:
    """Run dicom3tools' dciodvfy on ``path``; return its "Error" lines (there should be none)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if "Error" in line]


def assert_valid(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Write ``datasets`` and assert dciodvfy reports no error in any of them."""
    paths = write_datasets(datasets, folder)
    for path in paths:
        assert dciodvfy_errors(path) == [], path
    return paths


@pytest.fixture(scope="module")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A synthetic 20-slice CT phantom written as files."""
    return write_series(ct_series(phantom(spheres=4)), tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="module")
def ct(ct_files: list[Path]) -> SourceSeries:
    """The synthetic CT loaded through dicomstation.volumes (headers + volume)."""
    return SourceSeries.from_files(ct_files)
