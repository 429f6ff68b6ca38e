"""C-GET of compressed instances and C-FIND de-duplication against peers that accept one
transfer syntax per presentation context: pynetdicom's qrscp and dcmtk's dcmqrscp.

Regression for issue 12: one context per SOP class with 13 syntaxes made these peers
accept Explicit VR Little Endian only and answer 0xA702 for every compressed instance;
qrscp answers a STUDY-level C-FIND once per instance (duplicate study rows).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pynetdicom.dsutils import split_dataset
from pynetdicom.presentation import StoragePresentationContexts

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.models import Level, Query, SeriesRef, StudyRef
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_assoc import RECEIVE_TRANSFER_SYNTAXES
from dicomstation.nodes.dimse_contexts import (
    COMPRESSED_PRIORITY,
    UNCOMPRESSED,
    ladder,
    storage_contexts,
)
from dicomstation.nodes.dimse_matches import UniqueMatches
from tests.dimse.conftest import dcmtk_env, sop_uid, stop, wait_port
from tests.peers import free_port

DATA = Path("../shared/data/dcm_qa_ts/In")
#: One MR study: Explicit VR LE, RLE, JPEG lossless SV1, JPEG-LS lossless, JPEG 2000 lossless.
TS_FILES = ("1.dcm", "4.dcm", "5.dcm", "7.dcm", "9.dcm")
QR_MODELS = tuple(f"1.2.840.10008.5.1.4.1.2.{root}.{op}" for root in (1, 2) for op in (1, 2, 3))


def _files() -> list[Path]:
    if not DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return [DATA / name for name in TS_FILES]


def _dataset_bytes(path: Path) -> bytes:
    _meta, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def _syntax(path: Path) -> str:
    return str(read_file_meta_info(path).TransferSyntaxUID)


@pytest.fixture(scope="module")
def qrscp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DimseServer]:
    """pynetdicom's qrscp on loopback, holding the dcm_qa_ts study (stored by us)."""
    if importlib.util.find_spec("sqlalchemy") is None:
        pytest.skip("pynetdicom's qrscp needs sqlalchemy")
    files = _files()
    folder, port = tmp_path_factory.mktemp("qrscp"), free_port()
    command = [sys.executable, "-m", "pynetdicom", "qrscp", "--port", str(port), "-ba"]
    command += ["127.0.0.1", "--database-location", str(folder / "index.sqlite")]
    command += ["--instance-location", str(folder / "instances"), "-q"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, process, timeout=60)
        server = DimseServer("qrscp", "QRSCP", "127.0.0.1", port, timeout=20.0)
        report = DimseNode(server).store(files)
        assert report.ok and len(report.succeeded) == len(files), report.failed
        yield server
    finally:
        stop(process)


def _dcmqrscp_profile(path: Path) -> None:
    """An association profile accepting every syntax we propose (one per context, as dcmtk does)."""
    classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    lines = ["[[TransferSyntaxes]]", "[Any]"]
    lines += [f"TransferSyntax{i} = {ts}" for i, ts in enumerate(RECEIVE_TRANSFER_SYNTAXES, 1)]
    lines += ["[[PresentationContexts]]", "[QR]"]
    contexts = ["1.2.840.10008.1.1", *QR_MODELS, *classes][:128]
    lines += [f"PresentationContext{i} = {uid}\\Any" for i, uid in enumerate(contexts, 1)]
    lines += ["[[SCPSCURoleSelection]]", "[Roles]"]
    lines += [f"Role{i} = {uid}\\SCP" for i, uid in enumerate(contexts[7:], 1)]
    lines += ["[[Profiles]]", "[QR]", "PresentationContexts = QR", "SCPSCURoleSelection = Roles"]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def dcmqrscp_compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DimseServer]:
    """dcmtk dcmqrscp holding the dcm_qa_ts files (indexed with dcmqridx, stored as they are)."""
    for tool in ("dcmqrscp", "dcmqridx"):
        if shutil.which(tool) is None:
            pytest.skip(f"dcmtk {tool} is not installed")
    files = _files()
    tmp = tmp_path_factory.mktemp("dcmqrscp")
    folder, port = tmp / "db", free_port()
    folder.mkdir()
    copies = [shutil.copy(path, folder / f"f{i}.dcm") for i, path in enumerate(files)]
    subprocess.run(["dcmqridx", str(folder), *map(str, copies)], check=True, timeout=60)
    config, profile = tmp / "dcmqrscp.cfg", tmp / "profile.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nQRSCP {folder} RW (200, 1024mb) ANY\nAETable END\n"
    )
    _dcmqrscp_profile(profile)
    process = subprocess.Popen(
        ["dcmqrscp", "-c", str(config), "-xf", str(profile), "QR", "QR"],
        env=dcmtk_env(tmp / "bindlocal"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, process)
        yield DimseServer("dcmqrscp", "QRSCP", "127.0.0.1", port, timeout=20.0)
    finally:
        stop(process)


def _fetch_all(server: DimseServer, db: Database) -> list[Path]:
    files = _files()
    node = DimseNode(server)
    studies = node.find(Query(Level.STUDY))
    assert len(studies) == 1 and isinstance(studies[0], StudyRef)
    report = node.retrieve(studies[0].study_uid, into=db)
    assert report.ok, report.failed
    assert sorted(report.succeeded) == sorted(sop_uid(p) for p in files)
    return files


@pytest.mark.dcmtk
def test_get_compressed_from_dcmqrscp_arrives_as_stored(
    dcmqrscp_compressed: DimseServer, db: Database
) -> None:
    for path in _fetch_all(dcmqrscp_compressed, db):
        fetched = db.instance_path(sop_uid(path))
        assert _syntax(fetched) == _syntax(path), path.name
        assert _dataset_bytes(fetched) == _dataset_bytes(path), path.name


def test_get_compressed_from_qrscp_arrives_as_stored(qrscp: DimseServer, db: Database) -> None:
    for path in _fetch_all(qrscp, db):
        fetched = db.instance_path(sop_uid(path))
        assert _syntax(fetched) == _syntax(path), path.name
        # qrscp re-encodes the data set it sends; the encoded pixel data is what it stored
        assert dcmread(fetched).PixelData == dcmread(path).PixelData, path.name


def test_find_on_a_peer_answering_per_instance_gives_one_row_per_entity(
    qrscp: DimseServer,
) -> None:
    node = DimseNode(qrscp)
    studies = node.find(Query(Level.STUDY))
    assert len(studies) == 1 and isinstance(studies[0], StudyRef)
    assert studies[0].patient_name  # attributes kept through the merge
    streamed = list(node.iter_find(Query(Level.STUDY)))
    assert [s.study_uid for s in streamed] == [studies[0].study_uid]  # type: ignore[union-attr]
    series = node.find(Query(Level.SERIES, study_uid=studies[0].study_uid))
    assert len({s.series_uid for s in series if isinstance(s, SeriesRef)}) == len(series)
    images = node.find(Query(Level.IMAGE, study_uid=studies[0].study_uid))
    assert len(images) == len(TS_FILES)


def _ds(**attributes: object) -> Dataset:
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_duplicates_merge_missing_attributes_and_unite_modalities() -> None:
    unique = UniqueMatches(Level.STUDY)
    first = _ds(StudyInstanceUID="1.2.3", PatientName="", ModalitiesInStudy="CT")
    later = _ds(StudyInstanceUID="1.2.3", PatientName="DOE^J", ModalitiesInStudy=["CT", "SEG"])
    other = _ds(StudyInstanceUID="1.2.4")
    kept = list(unique.filter([first, later, other, _ds(PatientName="no key")]))
    assert len(kept) == 3 and kept[0] is first and unique.duplicates == 1
    assert str(first.PatientName) == "DOE^J"
    assert list(first.ModalitiesInStudy) == ["CT", "SEG"]


def _by_class(contexts: list) -> dict[str, list[list[str]]]:  # type: ignore[type-arg]
    found: dict[str, list[list[str]]] = {}
    for cx in contexts:
        found.setdefault(str(cx.abstract_syntax), []).append([str(t) for t in cx.transfer_syntax])
    return found


def test_contexts_give_each_compressed_syntax_its_own_context_within_the_limit() -> None:
    mr = "1.2.840.10008.5.1.4.1.1.4"
    for kwargs in ({"classes": [mr]}, {"modalities": ["MR"]}, {}):
        contexts = storage_contexts(**kwargs)  # type: ignore[arg-type]
        assert len(contexts) <= 127
        mine = _by_class(contexts)[mr]
        assert mine[0][: len(UNCOMPRESSED)] == list(UNCOMPRESSED)
        singles = {syntaxes[0] for syntaxes in mine[1:] if len(syntaxes) == 1}
        assert singles == {*COMPRESSED_PRIORITY, *UNCOMPRESSED[:2]}
    many = [str(cx.abstract_syntax) for cx in StoragePresentationContexts][:60]
    contexts = storage_contexts(many, stored={many[5]: ["1.2.840.10008.1.2.4.80"]})
    assert len(contexts) == 127 and set(_by_class(contexts)) == set(many)
    assert ["1.2.840.10008.1.2.4.80"] in _by_class(contexts)[many[5]]  # said to be stored
    led = storage_contexts([mr], lead=str(COMPRESSED_PRIORITY[3]))
    assert [str(t) for t in led[0].transfer_syntax] == [str(COMPRESSED_PRIORITY[3])]
    assert ladder({mr: ["1.2.840.10008.1.2.5"]})[0] == "1.2.840.10008.1.2.5"
