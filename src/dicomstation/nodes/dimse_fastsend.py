"""A fast path for C-STORE of files: PDUs written and responses read on the raw socket.

See :mod:`dimse_pdu` for why. For each file, the C-STORE-RQ command set is
encoded by hand (PS3.7 9.3.1.1), the data set is read from the file from its
offset after the File Meta Information and framed into P-DATA-TF PDUs of the
peer's maximum length, several PDUs per ``sendall`` -- no decoding, no
re-encoding -- and the C-STORE-RSP is read and parsed here too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from dicomstation.nodes.dimse_pdu import (
    A_ABORT,
    A_RELEASE_RQ,
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND,
    COMMAND_FIELD,
    DATA_SET_PRESENT,
    DATA_SET_TYPE,
    ERROR_COMMENT,
    MESSAGE_ID,
    P_DATA,
    PRIORITY,
    RESPONDED_TO,
    STATUS,
    Command,
    PduReader,
    encode_command,
    fragment_size,
    frame_data,
    parse_command,
    pdvs,
    send_message,
    text_field,
    uid_value,
    us_field,
    us_value,
)

__all__ = ["SUCCESS", "StoreChannel", "command_set"]

_PDUS_PER_WRITE = 32
_C_STORE_RQ, _C_STORE_RSP = Command.C_STORE_RQ, Command.C_STORE_RSP
_SUCCESS = 0x0000

#: What :meth:`StoreChannel.send_file` returns for a plain Success (no comment): one
#: shared status, never modified, so a caller can take the common case by identity
#: (building a pydicom Dataset per response cost ~50 us, as much as a small send).
SUCCESS = Dataset()
SUCCESS.Status = _SUCCESS


def command_set(sop_class: str, sop_uid: str, msg_id: int) -> bytes:
    """The C-STORE-RQ command set, Implicit VR Little Endian (priority low, data set present)."""
    return encode_command(
        {
            AFFECTED_SOP_CLASS: uid_value(sop_class),  # Affected SOP Class UID
            COMMAND_FIELD: us_value(_C_STORE_RQ),  # Command Field
            MESSAGE_ID: us_value(msg_id),  # Message ID
            PRIORITY: us_value(AFFECTED_SOP_CLASS),  # Priority: low (as pynetdicom)
            DATA_SET_TYPE: us_value(DATA_SET_PRESENT),
            AFFECTED_SOP_INSTANCE: uid_value(sop_uid),  # Affected SOP Instance UID
        }
    )


class StoreChannel:
    """Send files as C-STORE-RQs on a socket taken with :func:`dimse_pdu.own_socket`.

    Raises ``OSError`` (including ``TimeoutError``) on socket trouble and
    ``ConnectionAbortedError`` when the peer aborts; the caller maps those.
    """

    def __init__(self, sock: Any, max_pdu: int) -> None:
        self.sock = sock
        self.size = fragment_size(max_pdu)
        self.max_pdu = max_pdu
        self.reader = PduReader(sock)

    def close(self) -> None:
        """Release the read buffer."""
        self.reader.close()

    def send_file(
        self,
        context_id: int,
        path: Path,
        offset: int,
        sop_class: str,
        sop_uid: str,
        msg_id: int,
        *,
        pad_odd: bool = False,
    ) -> Dataset:
        """Send ``path`` (data set from ``offset``) and return the response status.

        ``pad_odd`` appends a null byte to an odd-length data set (deflated
        streams, PS3.5 A.5).
        """
        send_message(
            self.sock, context_id, command_set(sop_class, sop_uid, msg_id), None, self.max_pdu
        )
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # unbuffered: blocks read at once
        try:
            position = offset
            remaining = os.fstat(fd).st_size - offset
            pad = b"\x00" if pad_odd and remaining % 2 else b""
            while remaining > 0:
                block = os.pread(fd, min(self.size * _PDUS_PER_WRITE, remaining), position)
                if not block:
                    raise OSError(f"{path} shrank while it was being sent")
                remaining -= len(block)
                position += len(block)
                if remaining <= 0:
                    block += pad
                self.sock.sendall(frame_data(context_id, block, self.size, last=remaining <= 0))
        finally:
            os.close(fd)
        return self._response(msg_id)

    def _response(self, msg_id: int) -> Dataset:
        command = bytearray()
        while True:
            kind, body = self.reader.pdu()
            if kind in (A_ABORT, A_RELEASE_RQ):
                raise ConnectionAbortedError("the peer aborted the association")
            if kind != P_DATA:
                raise ConnectionAbortedError(f"unexpected PDU type 0x{kind:02X}")
            for _cx, control, fragment in pdvs(body):
                if not control & COMMAND:
                    raise ConnectionAbortedError("data set in a C-STORE response")
                command += fragment
                if control & 0x02:
                    return self._status(parse_command(bytes(command)), msg_id)

    @staticmethod
    def _status(fields: dict[int, bytes], msg_id: int) -> Dataset:
        if (
            us_field(fields, COMMAND_FIELD) != _C_STORE_RSP
            or us_field(fields, RESPONDED_TO) != msg_id
        ):
            raise ConnectionAbortedError("C-STORE response does not answer the request")
        code = us_field(fields, STATUS)
        if code == _SUCCESS and ERROR_COMMENT not in fields:
            return SUCCESS
        status = Dataset()
        status.Status = code
        if ERROR_COMMENT in fields:
            status.ErrorComment = text_field(fields, ERROR_COMMENT)
        return status
