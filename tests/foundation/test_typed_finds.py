"""Typed finds per level: ``find_studies`` returns StudyRefs, ``find_series`` SeriesRefs..."""

from __future__ import annotations

from pathlib import Path

from dicomstation import Database, InstanceRef, Level, PatientRef, Query, SeriesRef, StudyRef
from dicomstation.nodes.local import LocalNode
from tests.synth import write_ct_series


def test_typed_finds_return_the_level_asked_for_and_apply_filters(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "a", 3, size=8, patient_name="DOE^ANN", patient_id="A1")
    write_ct_series(tmp_path / "b", 2, size=8, patient_name="ROE^BOB", patient_id="B2")
    with Database.temporary() as db, LocalNode(db) as node:
        db.import_path(tmp_path)
        studies = node.find_studies(PatientName="DOE^*")
        assert [type(s) for s in studies] == [StudyRef] and studies[0].patient_id == "A1"
        # a Query's level is overridden, its filters kept, keyword filters merged over them
        at_series = Query(Level.SERIES, {"PatientID": "B2"})
        (other,) = node.find_studies(at_series)
        assert isinstance(other, StudyRef) and other.patient_name == "ROE^BOB"
        assert node.find_studies(at_series, PatientID="A1")[0].patient_id == "A1"
        series = node.find_series(study_uid=studies[0].study_uid)
        assert [type(s) for s in series] == [SeriesRef]
        assert series[0].study_uid == studies[0].study_uid
        instances = node.find_instances(series_uid=series[0].series_uid)
        assert len(instances) == 3 and all(type(i) is InstanceRef for i in instances)
        assert {i.series_uid for i in instances} == {series[0].series_uid}
        patients = node.find_patients()
        assert sorted(p.patient_id for p in patients) == ["A1", "B2"]
        assert all(type(p) is PatientRef for p in patients)
        assert node.find(Query(Level.STUDY)) and len(node.find_studies()) == 2
