"""Every node is a context manager that closes on exit.

``SCRIPT`` type-checks as one under mypy --strict: it is checked in the one mypy run of
``test_readme_types`` (with the README's examples).
"""

from __future__ import annotations

from dicomstation import DicomNode, DicomWebServer, DimseServer, open_node
from dicomstation.database import Database
from dicomstation.nodes.local import LocalNode

SCRIPT = """
from dicomstation import DimseServer, open_node


def main() -> str:
    with open_node(DimseServer("pacs", "PACS", "127.0.0.1", 104)) as node:
        return node.name
"""


def test_every_node_is_a_context_manager() -> None:
    with open_node(DicomWebServer("w", "http://127.0.0.1:9/dw")) as web:
        assert isinstance(web, DicomNode)
        client = web.client  # type: ignore[attr-defined]
    assert client.is_closed
    with open_node(DimseServer("d", "D", "127.0.0.1", 9)) as dimse:
        assert isinstance(dimse, DicomNode) and dimse.name == "d"
    with Database.temporary() as db, LocalNode(db) as local:
        assert isinstance(local, DicomNode)
