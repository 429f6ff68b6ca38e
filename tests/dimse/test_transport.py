"""The DIMSE transport seam: one choice, honoured by real associations, bad values refused."""

from __future__ import annotations

import pytest
from pynetdicom import build_context
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomstation.config import DimseServer
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.nodes.dimse_assoc import open_association
from dicomstation.nodes.dimse_transport import ENV_VAR, Transport, selected, use_fast
from dicomstation.nodes.listener import StorageListener


def test_choice_is_honoured_on_a_real_association(db: Database, dimse_transport: str) -> None:
    with StorageListener(db, ae_title="SEAM", port=0) as listener:
        server = DimseServer("self", "SEAM", "127.0.0.1", listener.port, timeout=10.0)
        with open_association(server, [build_context(Verification)], "C-ECHO") as assoc:
            assert selected() is Transport(dimse_transport)
            assert use_fast(assoc) is (dimse_transport == "fast")
            status = assoc.send_c_echo()
            assert int(status.Status) == 0


def test_unknown_transport_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "warp")
    with pytest.raises(ConfigError, match="DICOMSTATION_DIMSE_TRANSPORT='warp'"):
        selected()
