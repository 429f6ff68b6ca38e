"""The node pool: one HTTP client per DICOMweb server for the tasks of an executor.

Real DICOMweb nodes (httpx clients) and, for the run, the real Orthanc behind a
proxy of ours that counts the TCP connections it accepts: without the pool every
task opened its own client (and connections); with it the tasks of one run share
them.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dicomstation.config import Credentials, DicomWebServer, DimseServer, Secret
from dicomstation.database import Database
from dicomstation.nodes.dicomweb import DicomWebNode
from dicomstation.pipeline import RunOptions, WorkItem
from dicomstation.pipeline.nodepool import NodePool
from dicomstation.pipeline.step import StepContext
from tests.dicomweb.faultproxy import FaultProxy, _Handler
from tests.peers import OrthancServer
from tests.pipeline.conftest import cohort_pipeline, make_cohort, seg_studies, settings_for


def _server(name: str = "pacs", password: str = "one") -> DicomWebServer:
    creds = Credentials(username="user", password=Secret(password))
    return DicomWebServer(name=name, url="http://127.0.0.1:9/dicom-web", credentials=creds)


def _context(db: Database, pool: NodePool, **servers: object) -> StepContext:
    return StepContext(db, WorkItem("1.2.3"), "hash", servers, pool=pool)  # type: ignore[arg-type]


def test_tasks_share_the_node_of_one_configuration(tmp_path: Path) -> None:
    pool = NodePool()
    with Database.open(tmp_path / "db") as db:
        first = _context(db, pool, pacs=_server())
        second = _context(db, pool, pacs=_server())
        other = _context(db, pool, pacs=_server(password="two"))  # same name, other secret
        node = first.node("pacs")
        assert isinstance(node, DicomWebNode)
        assert second.node("pacs") is node
        assert other.node("pacs") is not node  # credentials are part of the key
        first.close()
        second.close()
        assert not node.client.is_closed  # a task's end leaves the pooled client open
        assert len(pool) == 2
        pool.close()
        assert node.client.is_closed and len(pool) == 0
        other.close()


def test_dimse_nodes_are_not_pooled() -> None:
    assert NodePool.shareable(_server())
    assert not NodePool.shareable(
        DimseServer(name="pacs", ae_title="PACS", host="127.0.0.1", port=104)
    )


def test_the_least_recently_used_node_is_closed_beyond_the_bound(tmp_path: Path) -> None:
    pool = NodePool(size=2)
    with Database.open(tmp_path / "db") as db:
        nodes = {}
        for name in ("a", "b", "a", "c"):  # "b" is then the least recently used
            nodes[name] = _context(db, pool, pacs=_server(name)).node("pacs")
    assert isinstance(nodes["b"], DicomWebNode) and nodes["b"].client.is_closed
    for name in ("a", "c"):
        node = nodes[name]
        assert isinstance(node, DicomWebNode) and not node.client.is_closed
    pool.close()


class _CountingHandler(_Handler):
    """The proxy's handler, counting the connections the proxy accepts."""

    def setup(self) -> None:
        super().setup()
        server = self.server
        assert isinstance(server, _CountingProxy)
        with server.counted:
            server.connections += 1


class _CountingProxy(FaultProxy):
    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.RequestHandlerClass = _CountingHandler
        self.connections = 0
        self.counted = threading.Lock()


@pytest.mark.orthanc
def test_an_in_process_run_reuses_connections_across_items(
    clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    items = 6
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", items)
    proxy = _CountingProxy(clean_orthanc.dicomweb_url)
    with proxy:
        settings = settings_for(clean_orthanc, proxy.url)
        options = RunOptions(database=tmp_path / "db", servers={"pacs": settings.server("pacs")})
        report = cohort_pipeline(concurrency=2).run(options)
        connections = proxy.connections
    assert (report.done, report.failed) == (items, {})
    assert sorted(seg_studies(clean_orthanc)) == sorted(cohort.studies)
    # A client per task made two connections per item (fetch and send) plus the driver's
    # query: 2 * items + 1. Shared, the send reuses the fetch's connection (our WADO-RS
    # reader still ends each retrieve's connection: one new connection per item).
    assert connections < 2 * items, connections
