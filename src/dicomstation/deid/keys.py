"""Keyed pseudonyms: UIDs, patient IDs and names, date offsets derived by HMAC-SHA256.

Every value is a pure function of (project key, original value), so every worker, machine and
rerun that holds the same key gives the same pseudonym, and every reference to a UID is mapped
the same way as the UID itself. Nothing here stores a mapping; the optional
:class:`~dicomstation.deid.ledger.Ledger` records one for authorised re-identification.

The key never appears in a ``repr``, a log line or the output: it is kept as a
:class:`~dicomstation.config.Secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from dicomstation.config import Secret
from dicomstation.errors import ConfigError

__all__ = ["MIN_KEY_LENGTH", "Pseudonyms"]

#: Shortest project key accepted (characters).
MIN_KEY_LENGTH = 16
#: Date offsets are drawn from ``[-MAX_OFFSET_DAYS, -MIN_OFFSET_DAYS]`` (whole days, earlier).
MIN_OFFSET_DAYS = 1
MAX_OFFSET_DAYS = 3652


@dataclass(frozen=True)
class Pseudonyms:
    """Keyed derivations for one project.

    Parameters
    ----------
    key : Secret
        The project key (at least :data:`MIN_KEY_LENGTH` characters).
    prefix : str
        Start of patient pseudonyms (``DS`` gives ``DS-3K7Q...``).

    Raises
    ------
    ConfigError
        If the key is missing or too short.
    """

    key: Secret
    prefix: str = "DS"

    def __post_init__(self) -> None:
        if len(self.key.reveal()) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"de-identification key must have at least {MIN_KEY_LENGTH} characters "
                "(set deid_key in the settings, or pass --key-file)"
            )

    def _digest(self, purpose: str, value: str) -> bytes:
        message = purpose.encode("ascii") + b"\x00" + value.encode("utf-8", "surrogateescape")
        return hmac.new(self.key.reveal().encode("utf-8"), message, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """A ``2.25.`` UID for ``original`` (a name-based UUID, RFC 9562 version 8)."""
        raw = bytearray(self._digest("uid", original.strip().rstrip("\x00"))[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        return f"2.25.{uuid.UUID(bytes=bytes(raw)).int}"

    def token(self, purpose: str, value: str, length: int = 12) -> str:
        """Upper-case base32 token of ``length`` characters for ``value``."""
        text = base64.b32encode(self._digest(purpose, value)).decode("ascii")
        return text[:length]

    def patient_id(self, identity: str) -> str:
        """Pseudonymous Patient ID for a patient identity (see :func:`patient_identity`)."""
        return f"{self.prefix}-{self.token('patient-id', identity)}"

    def patient_name(self, identity: str) -> str:
        """Pseudonymous Patient's Name (``PREFIX^TOKEN``) for a patient identity."""
        return f"{self.prefix}^{self.token('patient-name', identity, 8)}"

    def date_offset_days(self, identity: str) -> int:
        """Per-patient shift (negative whole days) for the Modified Dates option."""
        span = MAX_OFFSET_DAYS - MIN_OFFSET_DAYS + 1
        number = int.from_bytes(self._digest("date-offset", identity)[:8], "big")
        return -(MIN_OFFSET_DAYS + number % span)


def patient_identity(patient_id: str, issuer: str, name: str, study_uid: str) -> str:
    """The string a patient's pseudonyms derive from.

    Patient ID qualified by its issuer when there is an ID; else the name; else the study
    (a study without any patient identification is its own patient).
    """
    if patient_id.strip():
        return f"id:{issuer.strip()}:{patient_id.strip()}"
    if name.strip():
        return f"name:{name.strip()}"
    return f"study:{study_uid.strip()}"
