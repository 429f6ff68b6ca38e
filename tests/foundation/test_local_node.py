"""The local database behind the node interface."""

from __future__ import annotations

from pathlib import Path

from dicomstation import Database, DicomNode, Level, Query
from dicomstation.nodes.local import LocalNode
from tests.synth import write_ct_series


def test_local_node_is_a_dicom_node_and_copies_between_databases(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "src", 4, size=8)
    with Database.temporary() as source, Database.temporary() as target:
        source.import_path(tmp_path / "src")
        node = LocalNode(source)
        assert isinstance(node, DicomNode)
        assert node.echo() >= 0
        (study,) = node.find(Query(Level.STUDY))
        (series,) = node.find(Query(Level.SERIES, study_uid=study.study_uid))
        assert len(node.metadata(study.study_uid)) == 4
        events = []
        report = node.retrieve(
            study.study_uid, [series.series_uid], into=target, progress=events.append
        )
        assert len(report.succeeded) == 4 and events
        assert len(target.series_files(series.series_uid)) == 4
