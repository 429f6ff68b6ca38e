"""Side by side: which identifying values each de-identifier leaves behind, and how fast.

Run:  .venv/bin/python benchmarks/compare_deid.py [--per-folder 4] [--data ../shared/data]

On the same files (a deterministic sample of every folder of ../shared/data), runs

* dicomstation (PS3.15 2026d Basic Profile, keyed pseudonyms; burned-in suspects accepted so
  headers of every file are compared),
* dicognito 0.19.0 (``Anonymizer(seed=...)``),
* deid 0.4.13 (pydicom/deid, its default ``deid.dicom`` recipe, ``remove_private=True``),
* dicom-anonymizer 2.1.0 when installed (``anonymize(..., delete_private_tags=True)``),

writes each output to bytes and searches them for every identifying value of the original
(names, IDs, dates, instance UIDs, institution/device identity; collected by
``tests/deid/helpers.py`` independently of any of the tools, as whole tokens). Prints, per
tool, how many values survive by category, examples, seconds per file and the time ratio to
dicomstation. Comparison libraries come from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.deid.helpers import identifying_strings, is_dicom, survives  # noqa: E402

from dicomstation.config import Secret  # noqa: E402
from dicomstation.deid import DeidConfig, deidentify, encode  # noqa: E402

Tool = Callable[[Path], bytes]
_CATEGORY_KEYWORDS = {
    "InstitutionName": "institution/device",
    "InstitutionAddress": "institution/device",
    "InstitutionalDepartmentName": "institution/device",
    "StationName": "institution/device",
    "DeviceSerialNumber": "institution/device",
}


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=False)
    return buffer.getvalue()


def ours() -> Tool:
    config = DeidConfig(key=Secret("benchmark-project-key-0123456789"), allow_burned_in=True)
    return lambda path: encode(deidentify(pydicom.dcmread(path), config))


def dicognito() -> Tool:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed="benchmark")

    def run(path: Path) -> bytes:
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        return _bytes(ds)

    return run


def deid() -> Tool:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    recipe = DeidRecipe()

    def run(path: Path) -> bytes:
        done = replace_identifiers(
            dicom_files=[str(path)], deid=recipe, save=False, remove_private=True
        )
        return _bytes(done[0])

    return run


def dicom_anonymizer() -> Tool:
    from dicomanonymizer import anonymize

    folder = Path(tempfile.mkdtemp(prefix="bench-deid-"))

    def run(path: Path) -> bytes:
        out = folder / "out.dcm"
        anonymize(str(path), str(out), {}, True)
        return out.read_bytes()

    return run


def _sample(data: Path, per_folder: int) -> list[Path]:
    chosen: list[Path] = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_dicom(p))
        step = max(1, len(files) // per_folder)
        chosen += files[::step][:per_folder]
    return chosen


def _category(where: str) -> str:
    keyword = where.split("=", 1)[0]
    if keyword in _CATEGORY_KEYWORDS:
        return _CATEGORY_KEYWORDS[keyword]
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag) if tag is not None else ""
    return {"PN": "names", "DA": "dates", "DT": "dates", "UI": "UIDs"}.get(vr, "IDs")


@dataclass(frozen=True)
class Result:
    """What one tool left behind on the sample."""

    ok: int
    failed: int
    left: Counter[str]
    examples: dict[str, str]
    seconds: float


def _measure(tool: Tool, files: list[Path], truth: dict[Path, dict[bytes, str]]) -> Result:
    left: Counter[str] = Counter()
    examples: dict[str, str] = {}
    failed = 0
    started = time.perf_counter()
    outputs: dict[Path, bytes] = {}
    for path in files:
        try:
            outputs[path] = tool(path)
        except Exception as exc:  # a tool that cannot handle a file: counted, not fatal
            failed += 1
            examples.setdefault("failed", f"{path.name}: {type(exc).__name__}")
    seconds = time.perf_counter() - started
    for path, data in outputs.items():
        for raw, where in truth[path].items():
            if raw in data and survives(raw, data):
                category = _category(where)
                left[category] += 1
                examples.setdefault(category, f"{path.name}: {where}"[:70])
    return Result(len(outputs), failed, left, examples, seconds)


def _print(results: dict[str, Result]) -> None:
    base = results["dicomstation"].seconds
    print(f"{'tool':24} {'ok':>4} {'fail':>4} {'left':>5}  {'by category':58} {'s/file':>7} ratio")
    for name, r in results.items():
        cats = ", ".join(f"{k} {v}" for k, v in sorted(r.left.items())) or "-"
        per_file = r.seconds / max(1, r.ok + r.failed)
        ratio = r.seconds / base if base else float("nan")
        row = f"{name:24} {r.ok:>4} {r.failed:>4} {sum(r.left.values()):>5}  {cats:58}"
        print(f"{row} {per_file:7.4f} {ratio:5.2f}")
    for name, r in results.items():
        for category, example in sorted(r.examples.items()):
            print(f"  {name}: {category}: e.g. {example}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-folder", type=int, default=4)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data")
    args = parser.parse_args()
    files = _sample(args.data.resolve(), args.per_folder)
    truth = {p: identifying_strings(p) for p in files}
    total = Counter(_category(w) for t in truth.values() for w in t.values())
    tools: dict[str, Callable[[], Tool]] = {
        "dicomstation": ours,
        "dicognito 0.19.0": dicognito,
        "deid 0.4.13": deid,
        "dicom-anonymizer 2.1.0": dicom_anonymizer,
    }
    categories = ", ".join(f"{k} {v}" for k, v in sorted(total.items()))
    print(f"{len(files)} files from {args.data}; identifying values in the originals: ", end="")
    print(f"{sum(total.values())} ({categories}); ratio = time / dicomstation's time")
    results: dict[str, Result] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in tools.items():
            try:
                tool = make()
            except ImportError:
                print(f"{name}: not installed (pip install .[bench])")
                continue
            results[name] = _measure(tool, files, truth)
    _print(results)


if __name__ == "__main__":
    main()
