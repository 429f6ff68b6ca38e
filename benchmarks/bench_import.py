"""Import speed of the local database beside a plain header-only pydicom loop.

Usage: python benchmarks/bench_import.py [N_FILES] [SIZE]
Makes N synthetic CT files (default 2000 x 256x256) in a temp folder, then in
one run times, on warm page cache:
  * pydicom loop: ``dcmread(path, stop_before_pixels=True)`` for every file (peer);
  * dicomstation import (copy into the store, index, dedupe), workers = CPU count;
  * dicomstation import by reference (``copy=False``);
  * pydicom loop + ``shutil.copyfile`` (the same work as a copying import, serially).
Prints files/s and the ratio to the pydicom loop (goal: >= 2x on 2 cores).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.synth import write_ct_series

from dicomstation import Database


def _pydicom_loop(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
    return time.perf_counter() - started


def _pydicom_copy_loop(paths: list[Path], out: Path) -> float:
    out.mkdir()
    started = time.perf_counter()
    for path in paths:
        pydicom.dcmread(path, stop_before_pixels=True)
        shutil.copyfile(path, out / path.name)
    return time.perf_counter() - started


def _import(src: Path, work: Path, copy: bool) -> float:
    target = work / f"db-{'copy' if copy else 'ref'}"
    shutil.rmtree(target, ignore_errors=True)
    with Database.open(target) as db:
        started = time.perf_counter()
        report = db.import_path(src, copy=copy)
        seconds = time.perf_counter() - started
    assert len(report.succeeded) == len(list(src.iterdir())), report.failed
    return seconds


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        src = work / "src"
        paths = write_ct_series(src, count, size=size)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        _pydicom_loop(paths[:200])  # warm caches and imports
        peer = _pydicom_loop(paths)
        peer_copy = _pydicom_copy_loop(paths, work / "copies")
        shutil.rmtree(work / "copies")
        ours_copy = _import(src, work, copy=True)
        ours_ref = _import(src, work, copy=False)
        print(f"{count} files of {size}x{size} CT ({mb:.0f} MB), {os.cpu_count()} cores")
        print(f"{'method':42s} {'seconds':>8s} {'files/s':>9s} {'ratio':>6s}")
        rows = [
            ("pydicom dcmread(stop_before_pixels) loop", peer, peer),
            ("dicomstation import (reference)", ours_ref, peer),
            ("pydicom loop + shutil.copyfile", peer_copy, peer_copy),
            ("dicomstation import (copy)", ours_copy, peer_copy),
        ]
        for name, seconds, base in rows:
            print(f"{name:42s} {seconds:8.2f} {count / seconds:9.0f} {base / seconds:5.2f}x")
        print("ratios: reference import vs the header loop; copy import vs header loop + copy")


def real_data() -> None:
    """Same comparison on ../shared/data (real scanner headers, many private tags)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not shared.is_dir():
        print("../shared/data absent: real-data row skipped")
        return
    paths = [p for p in sorted(shared.rglob("*")) if p.is_file()]
    readable = []
    for path in paths:
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
            readable.append(path)
        except Exception:
            continue
    peer = _pydicom_loop(readable)
    with (
        tempfile.TemporaryDirectory(prefix="bench-import-real-") as tmp,
        Database.open(Path(tmp) / "db") as db,
    ):
        started = time.perf_counter()
        report = db.import_path(readable, copy=False)
        ours = time.perf_counter() - started
    n = len(readable)
    print(
        f"real data: {n} files from ../shared/data ({len(report.succeeded)} indexed,"
        f" {len(report.skipped)} duplicates, {len(report.failed)} refused)"
    )
    print(f"{'pydicom dcmread(stop_before_pixels) loop':42s} {peer:8.2f} {n / peer:9.0f} 1.00x")
    print(
        f"{'dicomstation import (reference)':42s} {ours:8.2f} {n / ours:9.0f} {peer / ours:5.2f}x"
    )


if __name__ == "__main__":
    main()
    real_data()
