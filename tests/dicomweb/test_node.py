"""The DICOMweb node is a DicomNode, made by open_node from settings, and echoes."""

from __future__ import annotations

import pytest

from dicomstation.config import DicomWebServer
from dicomstation.errors import ConnectionFailedError
from dicomstation.nodes import DicomNode, open_node
from dicomstation.nodes.dicomweb import DicomWebNode
from tests.dicomweb.conftest import server_config
from tests.peers import OrthancServer, free_port


def test_is_a_dicom_node() -> None:
    node = open_node(DicomWebServer("x", "http://127.0.0.1:9/dicom-web"))
    assert isinstance(node, DicomWebNode) and isinstance(node, DicomNode)
    node.close()


def test_unreachable_server_is_a_named_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    with DicomWebNode.from_config(DicomWebServer("down", url)) as node:
        node.retry = node.retry.__class__(attempts=2, backoff=0.01)
        with pytest.raises(ConnectionFailedError, match="QIDO-RS on down: cannot connect"):
            node.echo()


@pytest.mark.orthanc
def test_echo(orthanc: OrthancServer) -> None:
    with open_node(server_config(orthanc)) as node:  # type: ignore[attr-defined]
        assert 0 <= node.echo() < 5
