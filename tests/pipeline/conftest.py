"""Fixtures for pipeline tests: a cohort of synthetic CT studies on the real Orthanc.

Orthanc is both the source (QIDO-RS / WADO-RS) and the destination (STOW-RS) of the
pipelines; what arrives is counted on its REST API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid

from dicomstation.config import Credentials, DicomWebServer, Secret
from dicomstation.pipeline import Pipeline
from dicomstation.settings import Settings
from tests.dicomweb.faultproxy import FaultProxy, _Handler
from tests.peers import OrthancServer
from tests.synth import write_ct_series

SLICES = 8
SIZE = 32


@dataclass(frozen=True)
class Cohort:
    """Studies uploaded to Orthanc (study UID -> series UID)."""

    studies: dict[str, str]
    orthanc: OrthancServer


def make_cohort(orthanc: OrthancServer, folder: Path, count: int) -> Cohort:
    """Upload ``count`` one-series CT studies of SLICES x SIZE x SIZE to Orthanc."""
    studies: dict[str, str] = {}
    for number in range(count):
        study, series = generate_uid(), generate_uid()
        paths = write_ct_series(
            folder / f"s{number}",
            SLICES,
            size=SIZE,
            study_uid=study,
            series_uid=series,
            patient_id=f"PIPE{number:03d}",
        )
        orthanc.upload(*paths)
        studies[str(study)] = str(series)
    return Cohort(studies, orthanc)


def settings_for(orthanc: OrthancServer, url: str | None = None) -> Settings:
    """Settings with the test Orthanc (or a proxy in front of it) as server ``pacs``."""
    creds = Credentials(username=orthanc.user, password=Secret(orthanc.password))
    server = DicomWebServer(name="pacs", url=url or orthanc.dicomweb_url, credentials=creds)
    return Settings().with_server(server)


def pipeline_table(**run: Any) -> dict[str, Any]:
    """Fetch every CT study of ``pacs``, segment, export SEG + SR, send them back."""
    return {
        "name": "cohort-test",
        "source": {"kind": "query", "server": "pacs", "level": "study"},
        "run": {"concurrency": 2, **run},
        "steps": [
            {"kind": "fetch", "server": "pacs"},
            {"kind": "load", "select": {"modality": ["CT"], "min_slices": 4}},
            {
                "kind": "segment",
                "segmenter": "threshold",
                "params": {"threshold": [0, 3000], "label": "Disk"},
            },
            {"kind": "export", "kinds": ["seg", "sr"]},
            {"kind": "send", "server": "pacs"},
        ],
    }


def cohort_pipeline(**run: Any) -> Pipeline:
    """The test pipeline as an object."""
    return Pipeline.from_dict(pipeline_table(**run))


def orthanc_series(orthanc: OrthancServer, modality: str) -> dict[str, int]:
    """Series of ``modality`` on Orthanc: SeriesInstanceUID -> number of instances."""
    with orthanc.rest() as client:
        found = client.post(
            "/tools/find", json={"Level": "Series", "Query": {"Modality": modality}, "Expand": True}
        ).json()
    return {s["MainDicomTags"]["SeriesInstanceUID"]: len(s["Instances"]) for s in found}


def seg_studies(orthanc: OrthancServer) -> list[str]:
    """StudyInstanceUID of the study of every SEG series on Orthanc (one entry per series)."""
    with orthanc.rest() as client:
        found = client.post(
            "/tools/find", json={"Level": "Series", "Query": {"Modality": "SEG"}, "Expand": True}
        ).json()
        return [
            client.get(f"/studies/{s['ParentStudy']}").json()["MainDicomTags"]["StudyInstanceUID"]
            for s in found
        ]


class _RetryAfterHandler(_Handler):
    """The fault proxy's handler, adding ``Retry-After: 1`` to injected 429/503 answers."""

    def _reply(
        self,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        truncate_at: int | None = None,
    ) -> None:
        extra = {"Retry-After": "1"} if status in (429, 503) else {}
        super()._reply(status, {**headers, **extra}, content, truncate_at)


def retry_after_proxy(upstream: str) -> FaultProxy:
    """A fault proxy whose injected 429/503 answers carry Retry-After."""
    proxy = FaultProxy(upstream)
    proxy.RequestHandlerClass = _RetryAfterHandler
    return proxy


@pytest.fixture()
def rest(orthanc: OrthancServer) -> httpx.Client:
    """An authenticated REST client on Orthanc."""
    return orthanc.rest()
