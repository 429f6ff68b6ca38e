"""The one DIMSE error mapping: every status category, association failures, timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_context, evt
from pynetdicom import status as pn_status

from dicomstation.config import DimseServer
from dicomstation.errors import (
    AssociationError,
    AuthenticationError,
    CancelledError,
    ConnectionFailedError,
    NodeError,
    ProtocolError,
    RemoteStatusError,
)
from dicomstation.models import Level, Query
from dicomstation.nodes.dimse import DimseNode
from dicomstation.nodes.dimse_errors import (
    StatusCategory,
    check_status,
    describe,
    status_category,
    status_error,
)
from dicomstation.nodes.dimse_fastsend import command_set
from dicomstation.nodes.dimse_query import QueryRoot, model_uid
from tests.peers import free_port

TABLES = {
    "C-ECHO": pn_status.VERIFICATION_SERVICE_CLASS_STATUS,
    "C-STORE": pn_status.STORAGE_SERVICE_CLASS_STATUS,
    "C-FIND": pn_status.QR_FIND_SERVICE_CLASS_STATUS,
    "C-MOVE": pn_status.QR_MOVE_SERVICE_CLASS_STATUS,
    "C-GET": pn_status.QR_GET_SERVICE_CLASS_STATUS,
}
EXPECTED: dict[str, tuple[type[Exception], ...] | None] = {
    "Success": None,
    "Pending": None,
    "Warning": None,
    "Cancel": (CancelledError,),
    "Failure": (RemoteStatusError, AuthenticationError),
}


def _all_codes() -> Iterator[tuple[str, int, str]]:
    for operation, table in TABLES.items():
        for code, (category, _text) in table.items():
            yield operation, code, category


@pytest.mark.parametrize("operation", sorted(TABLES))
def test_every_known_status_is_mapped_by_category(operation: str) -> None:
    for code, (category, _text) in TABLES[operation].items():
        assert status_category(code, operation).value == category, hex(code)
        error = status_error(code, server="pacs", operation=operation, uid="1.2.3")
        expected = EXPECTED[category]
        if expected is None:
            assert error is None, hex(code)
            continue
        assert isinstance(error, expected), (hex(code), error)
        text = str(error)
        assert "pacs" in text and operation in text and "1.2.3" in text, text
        assert f"0x{code:04X}" in text


def test_all_categories_seen() -> None:
    seen = {category for _, _, category in _all_codes()}
    assert seen == {"Success", "Pending", "Warning", "Cancel", "Failure"}


def test_failure_carries_status_and_standard_text() -> None:
    error = status_error(0xA801, server="pacs", operation="C-MOVE", uid="1.2")
    assert isinstance(error, RemoteStatusError)
    assert error.status == 0xA801 and error.server == "pacs" and error.uid == "1.2"
    assert "Move destination unknown" in str(error)


def test_not_authorised_is_an_authentication_error() -> None:
    error = status_error(0x0124, server="pacs", operation="C-STORE", uid="1.2")
    assert isinstance(error, AuthenticationError)


@pytest.mark.parametrize("code", [0xB123, 0x0001])
def test_unlisted_warning_ranges_are_warnings(code: int) -> None:
    assert status_category(code, "C-STORE") is StatusCategory.WARNING
    status = Dataset()
    status.Status = code
    status.ErrorComment = "coerced"
    outcome = check_status(status, server="pacs", operation="C-STORE", uid="1.2")
    assert "coerced" in outcome.warning


def test_unknown_status_is_a_protocol_error() -> None:
    error = status_error(0x1234, server="pacs", operation="C-FIND")
    assert isinstance(error, ProtocolError)
    assert describe(0x1234) == "0x1234"


def test_empty_status_is_a_timeout_not_an_empty_result() -> None:
    with pytest.raises(ConnectionFailedError, match=r"C-STORE on pacs for 1\.2.*within 5s"):
        check_status(Dataset(), server="pacs", operation="C-STORE", uid="1.2", timeout=5)


def test_fast_path_command_set_is_what_pynetdicom_encodes() -> None:
    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    request = C_STORE()
    request.MessageID = 7
    request.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    request.AffectedSOPInstanceUID = "1.2.3.4.5"
    request.Priority = 2
    request.DataSet = BytesIO(b"\x00" * 8)  # any non-empty data set: "present"
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    expected = encode(message.command_set, True, True)
    assert command_set("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5", 7) == expected


# -- real pynetdicom peers in this process ----------------------------------------------


def _scp(port: int, **options: Any) -> Any:
    ae = AE(ae_title="PYSCP")
    ae.add_supported_context("1.2.840.10008.1.1")
    ae.add_supported_context(model_uid(QueryRoot.STUDY, "C-FIND", Level.STUDY))
    for key, value in options.pop("ae", {}).items():
        setattr(ae, key, value)
    return ae.start_server(("127.0.0.1", port), block=False, **options)


def test_refused_connection_is_connection_failed() -> None:
    node = DimseNode(DimseServer("nobody", "X", "127.0.0.1", free_port(), timeout=3))
    with pytest.raises(ConnectionFailedError, match="C-ECHO on nobody"):
        node.echo()


def test_rejected_calling_ae_is_authentication_error() -> None:
    port = free_port()
    server = _scp(port, ae={"require_calling_aet": ["SOMEONE"]})
    try:
        node = DimseNode(DimseServer("picky", "PYSCP", "127.0.0.1", port, timeout=5))
        with pytest.raises(AuthenticationError, match="Calling AE title not recognised"):
            node.echo()
    finally:
        server.shutdown()


def test_rejected_called_ae_is_association_error() -> None:
    port = free_port()
    server = _scp(port, ae={"require_called_aet": True})
    try:
        node = DimseNode(DimseServer("picky", "WRONG", "127.0.0.1", port, timeout=5))
        with pytest.raises(AssociationError, match="Called AE title not recognised"):
            node.echo()
    finally:
        server.shutdown()


def test_no_accepted_context_is_association_error() -> None:
    port = free_port()
    ae = AE(ae_title="PYSCP")
    ae.add_supported_context("1.2.840.10008.1.1")  # echo only, no C-FIND
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        node = DimseNode(DimseServer("echo-only", "PYSCP", "127.0.0.1", port, timeout=5))
        with pytest.raises(AssociationError, match="none of the proposed presentation"):
            node.find(Query(Level.STUDY))
        assert node.echo() > 0
    finally:
        server.shutdown()


def _failing_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
    found = Dataset()
    found.QueryRetrieveLevel = "STUDY"
    found.StudyInstanceUID = "1.2.3"
    yield 0xFF00, found
    yield 0xC001, None


def test_timeout_is_an_error_not_an_empty_result() -> None:
    released = threading.Event()

    def slow_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        released.wait(30)  # stall until the client has given up
        yield 0x0000, None

    port = free_port()
    server = _scp(port, evt_handlers=[(evt.EVT_C_FIND, slow_find)])
    try:
        node = DimseNode(DimseServer("slow", "PYSCP", "127.0.0.1", port, timeout=2))
        started = time.monotonic()
        with pytest.raises(ConnectionFailedError, match=r"C-FIND on slow.*no response"):
            node.find(Query(Level.STUDY))
        assert time.monotonic() - started < 6
    finally:
        released.set()
        server.shutdown()


def test_failure_after_pending_results_raises_naming_the_server() -> None:
    port = free_port()
    server = _scp(port, evt_handlers=[(evt.EVT_C_FIND, _failing_find)])
    try:
        node = DimseNode(DimseServer("flaky", "PYSCP", "127.0.0.1", port, timeout=5))
        seen = []
        with pytest.raises(RemoteStatusError) as info:
            for ref in node.iter_find(Query(Level.STUDY)):
                seen.append(ref)
        assert [r.study_uid for r in seen] == ["1.2.3"]  # pending results were delivered
        assert info.value.status == 0xC001 and info.value.server == "flaky"
        assert isinstance(info.value, NodeError) and info.value.operation == "C-FIND"
    finally:
        server.shutdown()


def test_context_for_find_is_study_root_unless_patient_level() -> None:
    assert (
        build_context(model_uid(QueryRoot.STUDY, "C-FIND", Level.PATIENT)).abstract_syntax
        == "1.2.840.10008.5.1.4.1.2.1.1"
    )
    assert model_uid(QueryRoot.STUDY, "C-GET", Level.SERIES) == "1.2.840.10008.5.1.4.1.2.2.3"


def test_fast_get_file_meta_is_what_pydicom_encodes() -> None:
    from pynetdicom.dsutils import create_file_meta, encode_file_meta

    from dicomstation.nodes.dimse_fastget import file_meta

    meta = create_file_meta(
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        sop_instance_uid="1.2.3.4",
        transfer_syntax="1.2.840.10008.1.2.1",
    )
    meta.SourceApplicationEntityTitle = "ORTHANC"
    assert file_meta(
        "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", "1.2.840.10008.1.2.1", "ORTHANC"
    ) == encode_file_meta(meta)


def test_fast_get_command_parser_reads_what_pynetdicom_writes() -> None:
    from dicomstation.nodes.dimse_pdu import parse_command

    raw = command_set("1.2.840.10008.5.1.4.1.1.2", "1.2.3.45", 513)
    fields = parse_command(raw)
    assert fields[0x0100] == b"\x01\x00" and fields[0x0110] == (513).to_bytes(2, "little")
    assert fields[0x1000].rstrip(b"\x00") == b"1.2.3.45"


@pytest.mark.parametrize(
    ("exc", "expected", "text"),
    [
        (TimeoutError("timed out"), ConnectionFailedError, "no response within 2s"),
        (ConnectionAbortedError("peer aborted"), AssociationError, "aborted"),
        (ConnectionResetError("reset"), ConnectionFailedError, "connection lost"),
    ],
)
def test_socket_errors_of_the_fast_paths(
    exc: OSError, expected: type[Exception], text: str
) -> None:
    from dicomstation.nodes.dimse_errors import socket_error

    error = socket_error(exc, server="pacs", operation="C-GET", uid="1.2", timeout=2)
    assert type(error) is expected and text in str(error) and "C-GET on pacs for 1.2" in str(error)


def _pending_without_identifier(event: Any) -> Iterator[tuple[int, Dataset | None]]:
    yield 0xFF00, None
    yield 0x0000, None


def test_pending_without_identifier_is_never_dropped() -> None:
    port = free_port()
    server = _scp(port, evt_handlers=[(evt.EVT_C_FIND, _pending_without_identifier)])
    try:
        node = DimseNode(DimseServer("odd", "PYSCP", "127.0.0.1", port, timeout=5))
        # pynetdicom's SCP answers a pending without identifier with 0xC312; either way
        # the caller gets an error naming the server, never a silently shorter list
        with pytest.raises((ProtocolError, RemoteStatusError), match="C-FIND on odd"):
            node.find(Query(Level.STUDY))
    finally:
        server.shutdown()
