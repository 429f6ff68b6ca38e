"""The ONE place where pynetdicom outcomes become dicomstation errors.

pynetdicom reports failures by returning objects: an association that is not
established, an empty status dataset when a timeout hit, a status code whose
meaning depends on the service. Every DIMSE module calls the functions here, so
each outcome is mapped once:

=====================================  ======================================
pynetdicom outcome                     dicomstation
=====================================  ======================================
no TCP connection / no A-ASSOCIATE-AC  :class:`ConnectionFailedError`
A-ASSOCIATE-RJ, calling AE unknown     :class:`AuthenticationError`
A-ASSOCIATE-RJ, any other reason       :class:`AssociationError`
A-ABORT / A-P-ABORT                    :class:`AssociationError`
no accepted presentation context       :class:`AssociationError`
empty status dataset (DIMSE timeout)   :class:`ConnectionFailedError`
status category Failure                :class:`RemoteStatusError`
status 0x0124 (Refused: Not authorized) :class:`AuthenticationError`
status category Cancel                 :class:`CancelledError`
status category Warning                a warning text (kept in the report)
status category Unknown                :class:`ProtocolError`
Pending without an identifier          :class:`ProtocolError`
fast path: socket timeout              :class:`ConnectionFailedError`
fast path: A-ABORT / reset / closed    :class:`AssociationError`
=====================================  ======================================
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import status as pn_status

from dicomstation.errors import (
    AssociationError,
    AuthenticationError,
    CancelledError,
    ConnectionFailedError,
    DicomStationError,
    NodeError,
    ProtocolError,
    RemoteStatusError,
)

__all__ = [
    "Outcome",
    "StatusCategory",
    "association_error",
    "check_status",
    "describe",
    "missing_identifier",
    "socket_error",
    "status_category",
    "status_error",
]

#: A-ASSOCIATE-RJ (result source, reason) pairs that mean "we are not allowed".
_AUTH_REJECTIONS = {(1, 3)}
_NOT_AUTHORISED = 0x0124

_SERVICE_TABLES: dict[str, dict[int, tuple[str, str]]] = {
    "C-ECHO": pn_status.VERIFICATION_SERVICE_CLASS_STATUS,
    "C-STORE": pn_status.STORAGE_SERVICE_CLASS_STATUS,
    "C-FIND": pn_status.QR_FIND_SERVICE_CLASS_STATUS,
    "C-MOVE": pn_status.QR_MOVE_SERVICE_CLASS_STATUS,
    "C-GET": pn_status.QR_GET_SERVICE_CLASS_STATUS,
}


class StatusCategory(enum.StrEnum):
    """Category of a DIMSE status (PS3.7 Annex C)."""

    SUCCESS = "Success"
    PENDING = "Pending"
    WARNING = "Warning"
    CANCEL = "Cancel"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Outcome:
    """A final status that did not raise: success, or a warning worth reporting."""

    status: int
    category: StatusCategory
    message: str = ""

    @property
    def warning(self) -> str:
        """The warning text, or ``""`` for a plain success."""
        return self.message if self.category is StatusCategory.WARNING else ""


def status_category(code: int, operation: str = "") -> StatusCategory:
    """Category of ``code``, using the service's own table when it has one."""
    table = _SERVICE_TABLES.get(operation, {})
    if code in table:
        return StatusCategory(table[code][0])
    # Warning 0x0001 and 0xBxxx are warnings in every service (PS3.7 C.4)
    if code == 0x0001 or 0xB000 <= code <= 0xBFFF:
        return StatusCategory.WARNING
    if 0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF:
        return StatusCategory.FAILURE
    return StatusCategory(pn_status.code_to_category(code))


def describe(code: int, operation: str = "") -> str:
    """Human text for a status: ``"0xA801 Move destination unknown"``."""
    table = _SERVICE_TABLES.get(operation, pn_status.GENERAL_STATUS)
    text = table.get(code, ("", ""))[1] or pn_status.GENERAL_STATUS.get(code, ("", ""))[1]
    return f"0x{code:04X}" + (f" {text}" if text else "")


def _comment(status: Dataset) -> str:
    comment = str(status.get("ErrorComment", "") or "").strip()
    return f" ({comment})" if comment else ""


def status_error(
    code: int, *, server: str, operation: str, uid: str | None = None, comment: str = ""
) -> DicomStationError | None:
    """The error for a final status code, or None when it is Success/Warning/Pending."""
    category = status_category(code, operation)
    text = describe(code, operation) + comment
    if category in (StatusCategory.SUCCESS, StatusCategory.WARNING, StatusCategory.PENDING):
        return None
    if category is StatusCategory.CANCEL:
        return CancelledError(
            f"{operation} on {server}" + (f" for {uid}" if uid else "") + f": cancelled ({text})"
        )
    if category is StatusCategory.UNKNOWN:
        return ProtocolError(
            f"unknown status {text}", server=server, operation=operation, uid=uid, status=code
        )
    if code == _NOT_AUTHORISED:
        return AuthenticationError(text, server=server, operation=operation, uid=uid, status=code)
    return RemoteStatusError(text, server=server, operation=operation, uid=uid, status=code)


def check_status(
    status: Dataset | None,
    *,
    server: str,
    operation: str,
    uid: str | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Map a returned status dataset: raise on failure, return the outcome otherwise.

    pynetdicom returns an empty dataset when the DIMSE timeout expired or the
    association died while waiting; that is a :class:`ConnectionFailedError`.
    """
    if status is None or "Status" not in status:
        waited = f" within {timeout:g}s" if timeout else ""
        raise ConnectionFailedError(
            f"no response{waited} (timeout or connection lost)",
            server=server,
            operation=operation,
            uid=uid,
        )
    code = int(status.Status)
    error = status_error(
        code, server=server, operation=operation, uid=uid, comment=_comment(status)
    )
    if error is not None:
        raise error
    category = status_category(code, operation)
    return Outcome(
        code,
        category,
        describe(code, operation) + _comment(status) if category is StatusCategory.WARNING else "",
    )


def missing_identifier(*, server: str, operation: str, uid: str | None = None) -> ProtocolError:
    """A Pending response that carries no (decodable) identifier: never dropped silently."""
    return ProtocolError(
        "pending response without a decodable identifier",
        server=server,
        operation=operation,
        uid=uid,
    )


def association_error(
    assoc: Any, *, server: str, operation: str, timeout: float | None = None
) -> NodeError:
    """The error for an association that could not be established or was lost."""
    primitive = getattr(getattr(assoc, "acceptor", None), "primitive", None)
    if getattr(assoc, "is_rejected", False) and primitive is not None:
        source = int(getattr(primitive, "result_source", 0) or 0)
        reason = int(getattr(primitive, "diagnostic", 0) or 0)
        text = (
            f"association rejected ({primitive.result_str}, {primitive.source_str}: "
            f"{primitive.reason_str})"
        )
        if (source, reason) in _AUTH_REJECTIONS:
            return AuthenticationError(text, server=server, operation=operation)
        return AssociationError(text, server=server, operation=operation)
    if primitive is None:
        return ConnectionFailedError(
            _no_association(assoc, timeout), server=server, operation=operation
        )
    if getattr(assoc, "is_established", False) is False and getattr(primitive, "result", 1) == 0:
        return AssociationError(
            "association aborted: the peer accepted none of the proposed presentation contexts",
            server=server,
            operation=operation,
        )
    return AssociationError("association aborted", server=server, operation=operation)


def _no_association(assoc: Any, timeout: float | None) -> str:
    """Why no association came: host:port and the cause, found by one TCP connect.

    pynetdicom keeps the socket error to itself, so the cause is learnt again
    with a plain connect to the same address (bounded by the same timeout).
    """
    acceptor = getattr(assoc, "acceptor", None)
    host, port = getattr(acceptor, "address", None), getattr(acceptor, "port", None)
    where = f"{host}:{port}" if host is not None and port is not None else "the peer"
    waited = f" within {timeout:g}s" if timeout else ""
    if host is None or port is None:
        return f"no association with {where}{waited}"
    try:
        with socket.create_connection((str(host), int(port)), timeout=min(timeout or 5.0, 5.0)):
            pass
    except ConnectionRefusedError:
        return f"cannot connect to {where}: connection refused (nothing listens on that port)"
    except socket.gaierror as exc:
        return f"cannot connect to {where}: unknown host ({exc.strerror})"
    except TimeoutError:
        return f"cannot connect to {where}: no answer{waited} (host unreachable or port filtered)"
    except OSError as exc:
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return (
        f"{where} accepts TCP connections but gave no association answer{waited} "
        "(not a DICOM port, or the peer is busy)"
    )


def socket_error(
    exc: OSError,
    *,
    server: str,
    operation: str,
    uid: str | None = None,
    timeout: float | None = None,
) -> NodeError:
    """The error for a socket failure on the fast paths (which read the socket themselves)."""
    if isinstance(exc, TimeoutError):
        waited = f" within {timeout:g}s" if timeout else ""
        return ConnectionFailedError(
            f"no response{waited} (timeout)", server=server, operation=operation, uid=uid
        )
    if isinstance(exc, ConnectionAbortedError):
        return AssociationError(
            f"association aborted: {exc}", server=server, operation=operation, uid=uid
        )
    return ConnectionFailedError(
        f"connection lost: {exc}", server=server, operation=operation, uid=uid
    )


def aborted(*, server: str, operation: str, uid: str | None = None) -> AssociationError:
    """The association was aborted (by the peer or the network) during an operation."""
    return AssociationError(
        "association aborted during the operation", server=server, operation=operation, uid=uid
    )
