"""The quick File Meta reader agrees with pydicom's on every real file it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_files
from pynetdicom.dsutils import split_dataset

from dicomstation.nodes.dimse_filemeta import read_file_meta

SHARED = Path("../shared/data")


def _files() -> list[Path]:
    found = [Path(p) for p in get_testdata_files("*.dcm")]
    if SHARED.is_dir():
        found += sorted(p for p in SHARED.rglob("*.dcm") if p.is_file())[:400]
    return found


def test_quick_reader_matches_pydicom() -> None:
    files = _files()
    read = 0
    for path in files:
        quick = read_file_meta(path)
        try:
            meta, offset = split_dataset(path)
        except Exception:  # pydicom refuses it: we must not accept it either
            assert quick is None, path
            continue
        if quick is None:
            continue  # left to pydicom (unusual meta group)
        read += 1
        assert quick.sop_class == str(meta.MediaStorageSOPClassUID), path
        assert quick.sop_instance == str(meta.MediaStorageSOPInstanceUID), path
        assert quick.transfer_syntax == str(meta.TransferSyntaxUID), path
        assert quick.offset == offset, path
    assert read >= len(files) // 2  # the quick reader handles the ordinary files


@pytest.mark.parametrize(
    "head",
    [b"", b"\x00" * 128 + b"DICM", b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00"],
    ids=["empty", "prefix-only", "truncated-element"],
)
def test_quick_reader_leaves_broken_files_to_pydicom(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(head)
    assert read_file_meta(path) is None
