"""Associations with a DIMSE peer: one application entity, timeouts, contexts, clean exit.

pynetdicom reports a failed association by returning an object that is not
established; :func:`open_association` turns that into a typed error (through
:mod:`dicomstation.nodes.dimse_errors`) and always releases or aborts on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.presentation import PresentationContext

from dicomstation.config import DimseServer
from dicomstation.nodes.dimse_errors import association_error
from dicomstation.nodes.dimse_owned import AVAILABLE, OwnedAE

__all__ = [
    "ACCEPT_TRANSFER_SYNTAXES",
    "MAX_CONTEXTS",
    "MAX_PDU",
    "RECEIVE_TRANSFER_SYNTAXES",
    "connection_opened",
    "make_ae",
    "new_ae",
    "open_association",
    "receive_contexts",
]

# pynetdicom's process-wide switches (_config) are never changed here: sending a
# file's bytes unchanged is the fast path's job (dimse_fastsend), and what
# pynetdicom logs is the application's logging configuration (docs/upstream/pynetdicom.md).

#: An association may carry at most 128 presentation contexts (PS3.8 9.3.2.2).
MAX_CONTEXTS = 128
#: Our maximum receive PDU: large PDUs mean fewer round trips through pynetdicom's reactor.
MAX_PDU = 4 * 1024 * 1024

#: Transfer syntaxes we accept for received instances: we store what the peer has,
#: compressed or not, without asking it to transcode.
RECEIVE_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)


#: Preference order when WE accept an association (storage listener): pynetdicom picks
#: the first of these the sender proposes, so the sender's own encoding (compressed
#: lossless, then lossy as it was acquired) wins over asking it to decompress.
ACCEPT_TRANSFER_SYNTAXES: tuple[UID, ...] = (
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEG2000,
    JPEGLSNearLossless,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)


def connection_opened(event: Any) -> None:
    """``evt.EVT_CONN_OPEN`` handler kept for callers; the work is done by our socket class.

    Nagle off (pynetdicom leaves it on, so the last segment of every DIMSE message
    waits for the peer's delayed ACK, ~40 ms on Linux) and PDU reads held to
    :data:`MAX_PDU` are properties of :class:`dimse_owned.OwnedSocket`, which
    every association made by :func:`new_ae` uses.
    """


def new_ae(ae_title: str) -> AE:
    """An application entity whose associations are our own objects (:mod:`dimse_owned`).

    Plain pynetdicom when the installed pynetdicom is not the checked minor version.
    """
    return OwnedAE(ae_title=ae_title) if AVAILABLE else AE(ae_title=ae_title)


def make_ae(ae_title: str, timeout: float) -> AE:
    """An application entity with our AE title, timeouts and a large receive PDU."""
    ae = new_ae(ae_title)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.maximum_pdu_size = MAX_PDU
    return ae


def receive_contexts(sop_classes: Iterable[str]) -> list[PresentationContext]:
    """Storage contexts (all receive transfer syntaxes) for the given SOP classes."""
    syntaxes: list[str | UID] = list(RECEIVE_TRANSFER_SYNTAXES)
    return [build_context(uid, syntaxes) for uid in sop_classes]


@contextlib.contextmanager
def open_association(
    server: DimseServer,
    contexts: Sequence[PresentationContext],
    operation: str,
    *,
    scp_roles: Sequence[str] = (),
    handlers: Sequence[tuple[Any, Callable[..., Any]]] = (),
    ae: AE | None = None,
) -> Iterator[Any]:
    """Open an association, yield it, then release it (abort if the body raised).

    Parameters
    ----------
    server : DimseServer
        The peer.
    contexts : sequence of PresentationContext
        What to propose (at most 128).
    operation : str
        For error messages (``"C-FIND"``...).
    scp_roles : sequence of str
        SOP classes for which we take the SCP role (C-GET storage sub-operations).
    handlers : sequence of (event, handler)
        pynetdicom event handlers bound to this association.

    Raises
    ------
    ConnectionFailedError, AssociationError, AuthenticationError
        When the association cannot be established.
    """
    if len(contexts) > MAX_CONTEXTS:
        raise AssertionError(f"{len(contexts)} presentation contexts > {MAX_CONTEXTS}")
    ae = ae or make_ae(server.calling_ae, server.timeout)
    roles: list[Any] = [build_role(uid, scp_role=True) for uid in scp_roles]
    bound: list[Any] = [(evt.EVT_CONN_OPEN, connection_opened), *handlers]
    # the contexts go to this association only: setting ae.requested_contexts would
    # rebuild (and re-validate) each one, ~40 ms for a C-GET's 127
    assoc = ae.associate(
        server.host,
        server.port,
        list(contexts),
        ae_title=server.ae_title,
        ext_neg=roles or None,
        evt_handlers=bound,
    )
    if not assoc.is_established:
        raise association_error(
            assoc, server=server.name, operation=operation, timeout=server.timeout
        )
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()
    finally:
        ae.shutdown()
