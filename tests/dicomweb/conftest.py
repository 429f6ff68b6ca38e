"""Fixtures for the DICOMweb tests: nodes on the real Orthanc, a loaded Orthanc, local DBs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.database import Database
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.transfer import RetryPolicy
from tests.dicomweb.synth import make_series
from tests.peers import OrthancServer

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2)


def server_config(orthanc: OrthancServer, url: str | None = None, **kw: object) -> DicomWebServer:
    """A DicomWebServer for the test Orthanc (optionally through a proxy URL)."""
    creds = Credentials(username=orthanc.user, password=Secret(orthanc.password))
    return DicomWebServer(name="orthanc", url=url or orthanc.dicomweb_url, credentials=creds, **kw)  # type: ignore[arg-type]


def make_node(orthanc: OrthancServer, url: str | None = None, **kw: object) -> DicomWebNode:
    """A node on the test Orthanc with fast retries."""
    node = DicomWebNode.from_config(server_config(orthanc, url), concurrency=4)
    node.retry = FAST_RETRY
    for key, value in kw.items():
        setattr(node, key, value)
    return node


@pytest.fixture()
def node(orthanc: OrthancServer) -> Iterator[DicomWebNode]:
    """A DicomWebNode on the session Orthanc."""
    with make_node(orthanc) as result:
        yield result


@pytest.fixture()
def db() -> Iterator[Database]:
    """An empty temporary local database."""
    with Database.temporary() as database:
        yield database


@pytest.fixture(scope="session")
def synth_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two synthetic CT series (12 and 5 slices of 64x64) in one study, as files."""
    root = tmp_path_factory.mktemp("synth")
    study = "1.2.826.0.1.3680043.8.498.1"
    return {
        "a": make_series(root / "a", study_uid=study, series_uid=study + ".1", count=12, size=64),
        "b": make_series(root / "b", study_uid=study, series_uid=study + ".2", count=5, size=64),
    }


STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES_A = STUDY + ".1"
SERIES_B = STUDY + ".2"


@pytest.fixture()
def loaded_orthanc(
    clean_orthanc: OrthancServer, synth_study: dict[str, list[Path]]
) -> OrthancServer:
    """The Orthanc holding exactly the synthetic study (17 instances)."""
    clean_orthanc.upload(*synth_study["a"], *synth_study["b"])
    return clean_orthanc
