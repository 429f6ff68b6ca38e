"""Benchmark: load a synthetic 300-slice 512x512 CT series.

dicomstation (``load_series``) vs SimpleITK's ImageSeriesReader vs dcm2niix,
each in its own subprocess (page cache warmed first), reporting load seconds
(inside the process, imports excluded), wall seconds of the whole process, and
peak RSS (``ru_maxrss``), plus the ratio of peak RSS to the volume's size.

Run: ``.venv/bin/python benchmarks/bench_volumes.py [--slices 300] [--size 512]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]


def make_series(folder: Path, slices: int, size: int, syntax: str = "") -> int:
    """Write a CT series (int16 stored, intercept -1024); return the volume's bytes.

    ``syntax``: a transfer syntax UID to compress each slice with (default: none).
    """
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2.5) ** 2).astype(np.int16)
    for k in range(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "Bench^Volume", "BENCH"
        ds.InstanceNumber = slices - k  # files out of order on purpose
        ds.ImagePositionPatient = [-250.0, -250.0, -0.75 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.9765625, 0.9765625]
        ds.SliceThickness = 0.75
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        noise = rng.integers(0, 50, (size, size), dtype=np.int16)
        ds.PixelData = (disk * (1000 + k) + noise).astype(np.int16).tobytes()
        if syntax:
            ds.compress(syntax)
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)
    return slices * size * size * 2


_PY_CODE = {
    "dicomstation": """
import dicomstation.volumes as dv
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
c0 = cpu(); t = time.perf_counter(); v = dv.load_series(files); dt = time.perf_counter() - t
shape = v.volume.array.shape
""",
    "SimpleITK": """
import SimpleITK as sitk
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
c0 = cpu(); t = time.perf_counter()
r = sitk.ImageSeriesReader()
r.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
img = r.Execute(); dt = time.perf_counter() - t
shape = img.GetSize()
""",
}

_PRELUDE = """
import glob, json, os, resource, sys, time, warnings
warnings.simplefilter("ignore")
folder = sys.argv[1]; files = sorted(glob.glob(os.path.join(folder, "*.dcm")))
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
"""

_EPILOGUE = """
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"load_s": dt, "cpu_s": cpu() - c0, "rss": rss, "base": base, "workers": workers}))
"""


def run_python(tool: str, folder: Path) -> dict[str, float]:
    """Run one Python loader in a fresh interpreter; parse its JSON line."""
    code = _PRELUDE + _PY_CODE[tool] + _EPILOGUE
    env_path = str(ROOT / "src")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    wall = time.perf_counter() - start
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def run_dcm2niix(folder: Path, out: Path) -> dict[str, float] | str:
    """Run dcm2niix (uncompressed NIfTI out) under a tiny Python wrapper for its peak RSS.

    Returns a message instead of figures when it is missing or fails.
    """
    exe = shutil.which("dcm2niix")
    if exe is None:
        return "not installed (apt-get install dcm2niix)"
    code = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "dt = time.perf_counter() - t\n"
        "c = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'load_s': dt, 'rss': c.ru_maxrss * 1024,"
        " 'cpu_s': c.ru_utime + c.ru_stime}))\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, exe, "-z", "n", "-b", "n", "-o", str(out), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return "failed: dcm2niix cannot read this series (e.g. no JPEG-LS support in this build)"
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def main() -> None:
    """Build the series, run every loader, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2, help="runs per tool; best is kept")
    parser.add_argument(
        "--syntax",
        default="",
        help="compress the slices first, e.g. 1.2.840.10008.1.2.4.80 (JPEG-LS lossless)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_volumes_") as tmp:
        folder, out = Path(tmp) / "series", Path(tmp) / "nifti"
        folder.mkdir()
        out.mkdir()
        nbytes = make_series(folder, args.slices, args.size, args.syntax)
        for f in folder.iterdir():  # warm the page cache for every tool alike
            f.read_bytes()
        runs: dict[str, list[dict[str, float] | str]] = {
            "dicomstation": [],
            "SimpleITK": [],
            "dcm2niix": [],
        }
        for _ in range(args.repeat):  # round-robin, so background load hits every tool alike
            runs["dicomstation"].append(run_python("dicomstation", folder))
            runs["SimpleITK"].append(run_python("SimpleITK", folder))
            runs["dcm2niix"].append(run_dcm2niix(folder, out))
        results: dict[str, dict[str, float] | str] = {}
        for tool, tool_runs in runs.items():
            figures = [r for r in tool_runs if isinstance(r, dict)]
            results[tool] = min(figures, key=lambda r: r["load_s"]) if figures else tool_runs[0]
    _print_table(results, nbytes, args)


def _print_table(
    results: dict[str, dict[str, float] | str], nbytes: int, args: argparse.Namespace
) -> None:
    mb = nbytes / 2**20
    syntax = args.syntax or "explicit VR little endian"
    print(
        f"\nseries: {args.slices} slices x {args.size}x{args.size} int16 = {mb:.0f} MiB, {syntax}"
    )
    base = results["dicomstation"]
    assert isinstance(base, dict)
    print(
        f"{'tool':<14}{'load s':>9}{'cpu s':>8}{'wall s':>9}{'peak RSS MiB':>14}{'RSS/volume':>12}"
        f"{'(RSS-imports)/volume':>22}{'time vs ds':>12}{'worker RSS MiB':>16}"
    )
    for tool, r in results.items():
        if isinstance(r, str):
            print(f"{tool:<14}  {r}")
            continue
        rss = r["rss"] / 2**20
        extra = (r["rss"] - r.get("base", 0)) / 2**20
        print(
            f"{tool:<14}{r['load_s']:>9.3f}{r['cpu_s']:>8.2f}{r['wall_s']:>9.2f}{rss:>14.0f}"
            f"{rss / mb:>12.2f}"
            f"{extra / mb:>22.2f}{r['load_s'] / base['load_s']:>11.2f}x"
            f"{r.get('workers', 0) / 2**20:>16.0f}"
        )
    print(
        "load s: examine+load (dicomstation), file-name scan+Execute (SimpleITK), the whole "
        "run including the uncompressed NIfTI write (dcm2niix); RSS-imports: peak RSS minus "
        "RSS after imports; cpu s: user+sys of the load incl. worker processes; best of "
        "--repeat runs, tools run round-robin; 'time vs ds' > 1 means slower than "
        "dicomstation; worker RSS: "
        "largest forked decoder process (compressed series; shares the output mapping)"
    )


if __name__ == "__main__":
    main()
