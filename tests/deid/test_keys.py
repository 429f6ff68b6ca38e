"""Keyed pseudonyms: form, determinism, key separation."""

from __future__ import annotations

import uuid

import pytest
from pydicom.uid import UID

from dicomstation.config import Secret
from dicomstation.deid import Pseudonyms
from dicomstation.deid.keys import MAX_OFFSET_DAYS, MIN_OFFSET_DAYS
from dicomstation.errors import ConfigError

A = Pseudonyms(Secret("a" * 32))
B = Pseudonyms(Secret("b" * 32))


def test_uids_are_valid_2_25_uuid_uids() -> None:
    for original in ("1.2.3", "1.2.840.113619.2.55.3.604688119", "9" * 64):
        new = A.uid(original)
        assert new.startswith("2.25.") and len(new) <= 64 and UID(new).is_valid
        value = uuid.UUID(int=int(new[5:]))
        assert value.version == 8 and value.variant == uuid.RFC_4122
        assert A.uid(original) == new != B.uid(original)
    assert A.uid("1.2.3") != A.uid("1.2.4")
    assert A.uid("1.2.3\x00") == A.uid("1.2.3 ") == A.uid("1.2.3")  # padding is not identity


def test_patient_pseudonyms_and_offsets() -> None:
    pid, name = A.patient_id("id::MRN1"), A.patient_name("id::MRN1")
    assert pid.startswith("DS-") and len(pid) <= 64 and pid == A.patient_id("id::MRN1")
    assert name.startswith("DS^") and pid != B.patient_id("id::MRN1")
    offsets = {A.date_offset_days(f"id::{i}") for i in range(200)}
    assert all(-MAX_OFFSET_DAYS <= o <= -MIN_OFFSET_DAYS for o in offsets)
    assert len(offsets) > 150  # spread, not a constant


def test_short_keys_are_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        Pseudonyms(Secret("short"))
    assert "a" * 32 not in repr(A)
