"""The re-identification ledger: local, private, idempotent."""

from __future__ import annotations

import stat
from pathlib import Path

from dicomstation.deid import Ledger, deidentify
from tests.deid.synth import SOP, config, ct_instance


def test_ledger_records_and_answers_both_ways(tmp_path: Path) -> None:
    result = deidentify(ct_instance(), config())
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.record(result.mappings)
        ledger.record(result.mappings)  # a rerun adds nothing
        new_uid = str(result.dataset.SOPInstanceUID)
        assert ledger.pseudonym_of("SOPInstanceUID", SOP) == new_uid
        assert ledger.original_of(new_uid) == [("SOPInstanceUID", SOP)]
        assert ledger.pseudonym_of("PatientID", "MRN12345") == str(result.dataset.PatientID)
        assert ledger.pseudonym_of("PatientID", "nobody") is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kinds = {m.kind for m in result.mappings}
    assert kinds == {"PatientID", "PatientName", "StudyInstanceUID", "SeriesInstanceUID",
                     "SOPInstanceUID"}  # fmt: skip
