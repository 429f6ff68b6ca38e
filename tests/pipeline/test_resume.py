"""Cohort runs against a real Orthanc: resume without duplicates, poison studies, 503/429."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.pipeline import LEDGER_NAME, Ledger, RunOptions, StepState
from tests.peers import OrthancServer
from tests.pipeline.conftest import (
    SIZE,
    SLICES,
    cohort_pipeline,
    make_cohort,
    orthanc_series,
    retry_after_proxy,
    seg_studies,
    settings_for,
)
from tests.synth import write_ct_series


def _options(orthanc: OrthancServer, db: Path, url: str | None = None) -> RunOptions:
    settings = settings_for(orthanc, url)
    return RunOptions(database=db, servers={"pacs": settings.server("pacs")})


def _local_count(db: Path, modality: str) -> int:
    with Database.open(db) as database:
        return len(database.find(Query(Level.SERIES, {"Modality": modality})))


def test_rerun_resumes_and_never_duplicates(clean_orthanc: OrthancServer, tmp_path: Path) -> None:
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", 4)
    pipeline, options = cohort_pipeline(), _options(clean_orthanc, tmp_path / "db")

    first = pipeline.run(options)
    assert (first.done, first.failed, first.already_done) == (4, {}, 0)
    assert sorted(seg_studies(clean_orthanc)) == sorted(cohort.studies)
    segs, srs = orthanc_series(clean_orthanc, "SEG"), orthanc_series(clean_orthanc, "SR")
    assert len(segs) == 4 and set(segs.values()) == {1}
    assert len(srs) == 4 and set(srs.values()) == {1}

    again = pipeline.run(options)  # resume: everything is done, nothing runs
    assert (again.total, again.done, again.already_done) == (0, 0, 4)

    (tmp_path / "db" / LEDGER_NAME).unlink()  # even without the ledger, nothing is made twice
    for suffix in ("-wal", "-shm"):
        (tmp_path / "db" / (LEDGER_NAME + suffix)).unlink(missing_ok=True)
    redo = pipeline.run(options)
    assert redo.done == 4
    assert orthanc_series(clean_orthanc, "SEG") == segs
    assert orthanc_series(clean_orthanc, "SR") == srs
    assert _local_count(tmp_path / "db", "SEG") == 4
    assert _local_count(tmp_path / "db", "SR") == 4


def _poison_study(orthanc: OrthancServer, folder: Path) -> str:
    """A CT study one of whose instances has truncated pixel data."""
    study = generate_uid()
    paths = write_ct_series(folder, SLICES, size=SIZE, study_uid=study, patient_id="POISON")
    ds = pydicom.dcmread(paths[3])
    ds.PixelData = ds.PixelData[: SIZE * 3]
    ds.save_as(paths[3], enforce_file_format=True)
    orthanc.upload(*paths)
    return study


def test_poison_study_fails_by_name_others_succeed(
    clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", 3)
    poison = _poison_study(clean_orthanc, tmp_path / "poison")
    pipeline, options = cohort_pipeline(), _options(clean_orthanc, tmp_path / "db")

    report = pipeline.run(options)
    assert report.done == 3
    assert list(report.failed) == [poison]
    assert f"study {poison}" in report.failed[poison]
    assert sorted(seg_studies(clean_orthanc)) == sorted(cohort.studies)

    with Ledger.open(options.ledger_path) as ledger:
        items = {i.item.key: i for i in ledger.items(pipeline.job_id)}
    assert items[poison].state is StepState.FAILED
    assert items[poison].error == report.failed[poison]
    failed_steps = [r for r in items[poison].steps if r.state is StepState.FAILED]
    assert len(failed_steps) == 1 and failed_steps[0].error
    assert all(items[s].state is StepState.DONE for s in cohort.studies)

    again = pipeline.run(options)  # the failed item is retried, the done ones are not
    assert (again.total, again.already_done, list(again.failed)) == (1, 3, [poison])


def test_source_answering_503_and_429_is_retried(
    clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", 3)
    with retry_after_proxy(clean_orthanc.dicomweb_url) as proxy:
        proxy.faults.match = "/series"
        proxy.faults.statuses = [503, 429] * 4
        options = _options(clean_orthanc, tmp_path / "db", proxy.url)
        report = cohort_pipeline(attempts=5).run(options)
        assert proxy.faults.statuses == []  # every injected fault was answered
    assert (report.done, report.failed) == (3, {})
    assert sorted(seg_studies(clean_orthanc)) == sorted(cohort.studies)


def test_temporary_workspace_leaves_the_local_database_alone(
    clean_orthanc: OrthancServer, tmp_path: Path
) -> None:
    cohort = make_cohort(clean_orthanc, tmp_path / "cohort", 2)
    pipeline = cohort_pipeline(workspace="temporary")
    report = pipeline.run(_options(clean_orthanc, tmp_path / "db"))
    assert (report.done, report.failed) == (2, {})
    assert sorted(seg_studies(clean_orthanc)) == sorted(cohort.studies)
    with Database.open(tmp_path / "db") as database:  # each task worked in its own database
        assert database.find(Query(Level.STUDY)) == []
    (tmp_path / "db" / LEDGER_NAME).unlink()
    assert pipeline.run(_options(clean_orthanc, tmp_path / "db")).done == 2
    assert len(orthanc_series(clean_orthanc, "SEG")) == 2  # rebuilt with the same UIDs
