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


def test_associations_are_our_own_objects_and_others_are_left_alone(db: Database) -> None:
    """Fast-path state lives on our subclasses; a pynetdicom association we did not make
    cannot be taken over, and ours carry no attributes set on them from outside."""
    from pynetdicom import AE

    from dicomstation.nodes.dimse_owned import OwnedAssociation, OwnedDUL, OwnedSocket
    from dicomstation.nodes.dimse_pdu import own_socket

    with StorageListener(db, ae_title="OWNED", port=0) as listener:
        server = DimseServer("self", "OWNED", "127.0.0.1", listener.port, timeout=10.0)
        with open_association(server, [build_context(Verification)], "C-ECHO") as assoc:
            assert isinstance(assoc, OwnedAssociation)
            assert isinstance(assoc.dul, OwnedDUL) and isinstance(assoc.dul.socket, OwnedSocket)
            with own_socket(assoc, 5) as sock:
                assert assoc.dul.handed_over and sock is assoc.dul.socket.socket
            assert not assoc.dul.handed_over
            assert "_is_transport_event" not in vars(assoc.dul)
            assert int(assoc.send_c_echo().Status) == 0  # pynetdicom's reader is back
        accepted = [a for a in listener._ae.active_associations]  # type: ignore[union-attr]
        assert all(isinstance(a, OwnedAssociation) for a in accepted)
        plain = AE(ae_title="PLAIN")
        plain.add_requested_context(Verification)
        other = plain.associate("127.0.0.1", listener.port, ae_title="OWNED")
        try:
            assert other.is_established and not use_fast(other)
            with pytest.raises(TypeError, match="own associations"):
                own_socket(other, 5).__enter__()
            assert int(other.send_c_echo().Status) == 0
            assert "_is_transport_event" not in vars(other.dul)
        finally:
            other.release()
            plain.shutdown()
