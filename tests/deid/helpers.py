"""Helpers for the de-identification tests: sampling ../shared/data, identifying strings, dciodvfy.

The identifying strings are collected here, independently of the implementation: what a person
would call identifying in the original file (names, IDs, dates, instance UIDs, institution and
device identity), each as the bytes it would have in the file.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import UID

KEY_TEXT = "dicomstation-test-key-0123456789abcdef"
PER_FOLDER = 5
ALWAYS_WHOLE = ("dcmqi_ct_seg_sr", "highdicom_seg_sr", "dicompyler_rt", "deid_data_us_ct")
CT2 = "pydicom_testfiles_subset/dicomdirtests_77654033_CT2"
#: Always in the sample (whole series the volume test loads).
ALWAYS = (CT2, "dcm_qa_philips_enh/In/enh/1901", "dcm_qa_ts/In/1.dcm", "/emri_small.dcm")
_IDENTIFYING_KEYWORDS = frozenset(
    {
        "PatientID",
        "OtherPatientIDs",
        "IssuerOfPatientID",
        "AccessionNumber",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "StationName",
        "DeviceSerialNumber",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "MedicalRecordLocator",
        "StudyID",
        "RequestedProcedureID",
        "PerformedProcedureStepID",
        "ScheduledProcedureStepID",
    }
)
_DUMMIES = frozenset({"19000101", "DEIDENTIFIED"})
_CLASS_LIKE = ("ClassUID", "SyntaxUID", "SchemeUID", "ResourceUID", "OrganizationUID")


def is_dicom(path: Path) -> bool:
    """True when the file has the Part 10 preamble and prefix."""
    with open(path, "rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _spread(files: list[Path], count: int) -> list[Path]:
    if len(files) <= count:
        return files
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def sample_files(data: Path, scratch: Path) -> dict[str, list[Path]]:
    """Per top-level folder of ``data``: the DICOM files to test (gzipped ones unpacked).

    Small folders and the reference sets are taken whole; larger ones are sampled evenly
    (deterministic), so every folder is covered in a few tens of seconds.
    """
    chosen: dict[str, list[Path]] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and is_dicom(p))
        packed = sorted(folder.rglob("*.dcm.gz"))[:1]
        for gz in packed:
            target = scratch / folder.name / gz.name.removesuffix(".gz")
            target.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(gz, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            files.append(target)
        if folder.name not in ALWAYS_WHOLE:
            whole = [f for f in files if any(part in f.as_posix() for part in ALWAYS)]
            files = whole + [f for f in _spread(files, PER_FOLDER) if f not in whole]
        chosen[folder.name] = files
    return chosen


_NUMBERS = frozenset({"DS", "IS", "FL", "FD", "SL", "SS", "UL", "US", "OB", "OW", "OF", "OD"})


def _walk(ds: Dataset) -> Iterator[tuple[Dataset, pydicom.DataElement]]:
    for tag in list(ds.keys()):
        if tag.group % 2:
            continue
        vr = ds.get_item(tag).VR or (dictionary_VR(tag) if dictionary_has_tag(tag) else "")
        if vr in _NUMBERS:
            continue  # numbers and pixels identify nobody (and are slow to decode)
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)
        else:
            yield ds, elem


def _texts(elem: pydicom.DataElement) -> list[str]:
    values = (
        elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
    )
    texts: list[str] = []
    for value in values:
        if value is None:
            continue
        text = str(value).strip()
        if elem.VR == "PN":
            texts += [p.strip() for p in re.split(r"[\^=]", text)]
        elif elem.VR == "DT":
            text = text[:8]
        texts.append(text)
    return [t for t in texts if len(t) >= 4 and t not in _DUMMIES]


def identifying_strings(path: Path) -> dict[bytes, str]:
    """``encoded bytes -> where it came from`` for every identifying value of the file."""
    ds = pydicom.dcmread(path, defer_size="4 KB")  # pixel data is not read
    encodings = convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 6"))
    found: dict[bytes, str] = {}
    for _, elem in _walk(ds):
        keep = elem.VR in ("PN", "DA", "DT") or elem.keyword in _IDENTIFYING_KEYWORDS
        if elem.VR == "UI" and not elem.keyword.endswith(_CLASS_LIKE):
            keep = True
        if not keep:
            continue
        for text in _texts(elem):
            if elem.VR == "UI" and (text.startswith("1.2.840.10008.") or UID(text).keyword):
                continue  # registered (SOP classes, well-known frames): identifies nobody
            if elem.VR not in ("DA", "DT") and text.isdigit() and len(text) < 8:
                continue  # short numbers coincide with counters (Series Number...)
            found[encode_string(text, encodings)] = f"{elem.keyword or elem.tag}={text!r}"
    return found


def survives(raw: bytes, data: bytes) -> bool:
    """True when ``raw`` occurs in ``data`` as a whole token (not inside a longer word/number).

    ("MARY" inside "PRIMARY" is not the patient's name surviving.)
    """
    pattern = rb"(?<![A-Za-z0-9.])" + re.escape(raw) + rb"(?![A-Za-z0-9])"
    return re.search(pattern, data) is not None


def _normalise(line: str) -> str:
    line = re.sub(r"<[^>]*>", "<v>", line)
    return re.sub(r"\b[\d.]+\b", "<n>", line)


def dciodvfy_errors(path: Path) -> set[str]:
    """dciodvfy's error lines for ``path``, with values and numbers normalised away."""
    result = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, errors="replace", timeout=60
    )
    lines = (result.stdout + result.stderr).splitlines()
    return {_normalise(line) for line in lines if line.startswith("Error")}


def referenced_uids(ds: Dataset) -> set[str]:
    """Every Referenced SOP Instance UID anywhere in ``ds``."""
    found: set[str] = set()
    for _, elem in _walk(ds):
        if elem.keyword == "ReferencedSOPInstanceUID":
            values = (
                elem.value
                if isinstance(elem.value, list | pydicom.multival.MultiValue)
                else [elem.value]
            )
            found.update(str(v) for v in values)
    return found
