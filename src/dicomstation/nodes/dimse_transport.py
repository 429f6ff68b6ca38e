"""The one place where a DIMSE exchange chooses its transport: our fast path or plain pynetdicom.

Two transports carry DIMSE messages once pynetdicom has negotiated an association:

``Transport.FAST``
    PDUs written and read on the association's socket by our own code
    (:mod:`dimse_fastsend` for C-STORE, :mod:`dimse_fastget` for C-GET,
    :mod:`dimse_fastscp` for the storage listener; framing in :mod:`dimse_pdu`).
    It uses pynetdicom internals through *our own* association subclasses only
    (:mod:`dimse_owned`), which exist only on the pynetdicom minor version they
    were checked against (:data:`CHECKED_PYNETDICOM`, pinned in pyproject):
    an association that is not one of them (:func:`dimse_pdu.fast_path_available`)
    takes the pynetdicom path.
``Transport.PYNETDICOM``
    pynetdicom's public ``send_c_store`` / ``send_c_get`` and its storage SCP.

The choice is :func:`selected`: ``DICOMSTATION_DIMSE_TRANSPORT`` (``fast``, the
default, or ``pynetdicom``) read when an exchange starts, so a whole process, a
test or a single command can run on either. :func:`use_fast` is what every
caller asks.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from dicomstation.errors import ConfigError
from dicomstation.nodes.dimse_owned import CHECKED_PYNETDICOM
from dicomstation.nodes.dimse_pdu import fast_path_available

__all__ = ["CHECKED_PYNETDICOM", "ENV_VAR", "Transport", "selected", "use_fast"]

#: Environment variable naming the transport (``fast`` or ``pynetdicom``).
ENV_VAR = "DICOMSTATION_DIMSE_TRANSPORT"


class Transport(enum.Enum):
    """How DIMSE messages travel on an established association."""

    FAST = "fast"
    PYNETDICOM = "pynetdicom"


def selected() -> Transport:
    """The transport asked for (``DICOMSTATION_DIMSE_TRANSPORT``; default ``fast``).

    Raises
    ------
    ConfigError
        When the variable names no known transport.
    """
    value = os.environ.get(ENV_VAR, "").strip().lower() or Transport.FAST.value
    try:
        return Transport(value)
    except ValueError:
        names = ", ".join(t.value for t in Transport)
        raise ConfigError(f"{ENV_VAR}={value!r}: expected one of {names}") from None


def use_fast(assoc: Any) -> bool:
    """True when ``assoc`` should be served by the fast path, False for plain pynetdicom."""
    return selected() is Transport.FAST and fast_path_available(assoc)
