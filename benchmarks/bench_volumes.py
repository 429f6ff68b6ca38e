"""Benchmark: load a synthetic 300-slice 512x512 CT series.

dicomstation (``load_series``) vs SimpleITK's ImageSeriesReader vs dcm2niix,
each in its own subprocess (page cache warmed first), reporting load seconds
(inside the process, imports excluded), wall seconds of the whole process, and
peak RSS (``ru_maxrss``), plus the ratio of peak RSS to the volume's size. The whole
commands ``dicomstation load DIR --to x.nii`` and ``dcm2niix -z n DIR`` are timed too
(wall and CPU seconds; goal: ours within 3x), on the synthetic CT and on the 170-slice
MPRAGE of ../shared/data.

Run: ``.venv/bin/python benchmarks/bench_volumes.py [--slices 300] [--size 512]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

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
        if syntax == ImplicitVRLittleEndian:  # uncompressed: written in it, not compressed
            ds.file_meta.TransferSyntaxUID = syntax
        elif syntax:
            ds.compress(syntax)
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)
    return slices * size * size * 2


_PY_CODE = {
    "dicomstation": """
import dicomstation.volumes as dv
import highdicom  # load() builds highdicom Volumes; imported lazily, so import it here (untimed)
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


def _timed(
    argv: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[bytes], dict[str, float]]:
    """Run ``argv``; its wall seconds and CPU seconds (user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, check=False, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return done, {"wall_s": wall, "cpu_s": cpu}


def _cli_env() -> dict[str, str]:
    """The environment of the CLI runs: bytecode caches written and used, as after an install.

    (With PYTHONDONTWRITEBYTECODE set, as in some sandboxes, every run of an editable
    install would compile the package's modules again.)
    """
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_cli(folder: Path, out: Path) -> dict[str, float]:
    """Wall and CPU time of the whole ``dicomstation load DIR --to x.nii`` (start-up included)."""
    exe = Path(sys.executable).with_name("dicomstation")
    argv = [str(exe), "load", str(folder), "--to", str(out / "x.nii")]
    done, figures = _timed(argv, _cli_env())
    done.check_returncode()
    figures["out_mib"] = (out / "x.nii").stat().st_size / 2**20
    return figures


def run_dcm2niix_command(folder: Path, out: Path) -> dict[str, float] | str:
    """Wall time of the whole ``dcm2niix -z n`` command."""
    exe = shutil.which("dcm2niix")
    if exe is None:
        return "not installed"
    before = set(out.iterdir())
    done, figures = _timed([exe, "-z", "n", "-b", "n", "-o", str(out), str(folder)])
    written = set(out.iterdir()) - before
    figures["out_mib"] = sum(f.stat().st_size for f in written) / 2**20
    return figures if done.returncode == 0 else "failed"


def mprage(folder: Path) -> int | None:
    """Unzip the 170-slice Philips MPRAGE of ../shared/data into ``folder``; its volume bytes."""
    source = ROOT.parent / "shared/data/dcm_qa_philips_enh/In/cl_mprage_1301_no_ref"
    files = sorted(source.glob("*.dcm.gz"))
    if not files:
        return None
    for gz in files:
        with gzip.open(gz) as src, (folder / gz.name.removesuffix(".gz")).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return len(files) * 256 * 256 * 4  # loaded as float32 (Philips rescale slope)


def bench(folder: Path, out: Path, repeat: int) -> dict[str, list[dict[str, float] | str]]:
    """Run every tool ``repeat`` times, round-robin (background load hits each alike)."""
    for f in folder.iterdir():  # warm the page cache for every tool alike
        f.read_bytes()
    run_cli(folder, out)  # untimed: bytecode caches written, the command's files cached
    run_dcm2niix_command(folder, out)
    for f in out.iterdir():
        f.unlink()
    tools = ("dicomstation", "SimpleITK", "dcm2niix", "dicomstation CLI", "dcm2niix command")
    runs: dict[str, list[dict[str, float] | str]] = {tool: [] for tool in tools}
    for _ in range(repeat):
        runs["dicomstation"].append(run_python("dicomstation", folder))
        runs["SimpleITK"].append(run_python("SimpleITK", folder))
        runs["dcm2niix"].append(run_dcm2niix(folder, out))
        runs["dicomstation CLI"].append(run_cli(folder, out))
        runs["dcm2niix command"].append(run_dcm2niix_command(folder, out))
        for f in out.iterdir():
            f.unlink()
    return runs


def _median(tool_runs: list[dict[str, float] | str]) -> dict[str, float] | str:
    figures = [r for r in tool_runs if isinstance(r, dict)]
    if not figures:
        return tool_runs[0]
    return {key: float(np.median([r[key] for r in figures])) for key in figures[0]}


def main() -> None:
    """Build the series, run every loader, print the tables (medians of --repeat runs)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool; medians printed")
    parser.add_argument(
        "--syntax",
        default="",
        help="compress the slices first, e.g. 1.2.840.10008.1.2.4.80 (JPEG-LS lossless)",
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench_volumes_") as tmp:
        folder, out = Path(tmp) / "series", Path(tmp) / "nifti"
        folder.mkdir()
        out.mkdir()
        nbytes = make_series(folder, args.slices, args.size, args.syntax)
        syntax = args.syntax or "explicit VR little endian"
        title = f"{args.slices} slices x {args.size}x{args.size} int16 CT (synthetic), {syntax}"
        _print_table(
            title, {t: _median(r) for t, r in bench(folder, out, args.repeat).items()}, nbytes
        )
        mp = Path(tmp) / "mprage"
        mp.mkdir()
        mp_bytes = mprage(mp)
        if mp_bytes is None:
            print("\nMPRAGE: ../shared/data absent, skipped")
        else:
            title = "170-slice Philips MPRAGE (../shared/data), 256x256, float32 after rescale"
            _print_table(
                title, {t: _median(r) for t, r in bench(mp, out, args.repeat).items()}, mp_bytes
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _print_table(title: str, results: dict[str, dict[str, float] | str], nbytes: int) -> None:
    mb = nbytes / 2**20
    print(f"\nseries: {title} = {mb:.0f} MiB")
    base = results["dicomstation"]
    assert isinstance(base, dict)
    print(
        f"{'tool':<18}{'load s':>9}{'cpu s':>8}{'wall s':>9}{'peak RSS MiB':>14}"
        f"{'(RSS-imports)/volume':>22}{'load vs ds':>12}"
    )
    for tool, r in results.items():
        if isinstance(r, str):
            print(f"{tool:<18}  {r}")
            continue
        if "load_s" not in r:
            wrote = f"  (writes {r['out_mib']:.0f} MiB)" if "out_mib" in r else ""
            print(f"{tool:<18}{'':>9}{r['cpu_s']:>8.2f}{r['wall_s']:>9.2f}{wrote}")
            continue
        extra = (r["rss"] - r.get("base", 0)) / 2**20
        print(
            f"{tool:<18}{r['load_s']:>9.3f}{r['cpu_s']:>8.2f}{r['wall_s']:>9.2f}"
            f"{r['rss'] / 2**20:>14.0f}{extra / mb:>22.2f}{r['load_s'] / base['load_s']:>11.2f}x"
        )
    ratios = []
    for tool in ("dcm2niix", "SimpleITK"):
        r = results.get(tool)
        if isinstance(r, dict):
            ratios.append(f"ds load / {tool} load = {base['load_s'] / r['load_s']:.2f}")
    cli, peer = results.get("dicomstation CLI"), results.get("dcm2niix command")
    if isinstance(cli, dict) and isinstance(peer, dict):
        ratios.append(f"ds CLI / dcm2niix command = {cli['wall_s'] / peer['wall_s']:.2f}")
        ratios.append(f"(cpu s: {cli['cpu_s'] / peer['cpu_s']:.2f})")
    print("ratios: " + "; ".join(ratios))
    print(
        "load s: examine+load in process, imports excluded (dicomstation), file-name scan+Execute "
        "(SimpleITK), the whole run incl. the NIfTI write (dcm2niix); wall s: whole process; "
        "'dicomstation CLI' = `dicomstation load DIR --to x.nii`, 'dcm2niix command' = "
        "`dcm2niix -z n DIR` (goal: CLI within 3x); cpu s of those two: user + system of "
        "the process; dcm2niix writes the stored integers with scl_slope/scl_inter, ours too "
        "when float32 holds the rescale exactly (else rescaled float32); medians of --repeat "
        "round-robin runs, after one untimed run of each command"
    )


if __name__ == "__main__":
    main()
