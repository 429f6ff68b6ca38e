"""Where users meet it: the ``deid`` command, ``deid-key``, and the ``deid`` pipeline step."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.deid import Pseudonyms
from dicomstation.deid.step import DeidStep
from dicomstation.errors import DeidentificationError
from dicomstation.pipeline.model import WorkItem
from dicomstation.pipeline.step import StepContext, step_from_table
from tests.deid.synth import KEY, SERIES, SOP, STUDY, ct_instance, write_instance

runner = CliRunner()
PSEUDO = Pseudonyms(KEY)


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DICOMSTATION_CONFIG", str(tmp_path / "settings.toml"))
    (tmp_path / "key").write_text(KEY.reveal())
    write_instance(tmp_path / "in" / "ct.dcm")
    return tmp_path


def test_dry_run_reports_per_attribute_and_writes_nothing(env: Path) -> None:
    result = runner.invoke(app, ["deid", str(env / "in"), "--key-file", str(env / "key")])
    assert result.exit_code == 0, result.output
    for word in ("PatientName", "SOPInstanceUID", "(private)", "would be written"):
        assert word in result.output
    assert "Doe" not in result.output and KEY.reveal() not in result.output
    shown = runner.invoke(
        app, ["deid", str(env / "in"), "--key-file", str(env / "key"), "--show-values", "--json"]
    )
    assert "MRN12345" in shown.output  # only when asked
    assert not (env / "out").exists()


def test_to_folder_and_to_database(env: Path) -> None:
    key = ["--key-file", str(env / "key")]
    done = runner.invoke(app, ["deid", str(env / "in"), "--to", str(env / "out"), *key])
    assert done.exit_code == 0, done.output
    new = PSEUDO.uid(SOP)
    assert (env / "out" / PSEUDO.uid(STUDY) / PSEUDO.uid(SERIES) / f"{new}.dcm").is_file()
    ledger = env / "ledger.sqlite"
    args = ["deid", str(env / "in"), "--to", "db", "--db", str(env / "db"), "--ledger", str(ledger)]
    done = runner.invoke(app, [*args, *key])
    assert done.exit_code == 0, done.output
    with Database.open(env / "db") as db:
        assert db.has_instances([new, SOP]) == {new}
    assert ledger.is_file()


def test_refusals_and_missing_key_are_one_line_errors(env: Path) -> None:
    done = runner.invoke(app, ["deid", str(env / "in")])
    assert done.exit_code == 2 and "no de-identification key" in done.output
    us = ct_instance()
    us.Modality = "US"
    write_instance(env / "us" / "us.dcm", us)
    done = runner.invoke(app, ["deid", str(env / "us"), "--key-file", str(env / "key")])
    assert done.exit_code == 3  # nothing done
    # rich wraps at the terminal width, at a space or (a long path) anywhere
    assert "us.dcm:refused:ultrasound" in "".join(done.output.split())
    done = runner.invoke(app, ["deid", str(env / "in"), "--key-file", str(env / "key"),
                               "--option", "retain-everything"])  # fmt: skip
    assert done.exit_code == 2 and "unknown" in done.output


def test_deid_key_generate_stores_a_secret_it_never_prints(env: Path) -> None:
    done = runner.invoke(app, ["deid-key", "--generate"])
    assert done.exit_code == 0, done.output
    settings = env / "settings.toml"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    key = settings.read_text().split('key = "')[1].split('"')[0]
    assert len(key) >= 32 and key not in done.output
    assert runner.invoke(app, ["deid-key", "--generate"]).exit_code == 2  # no silent replace
    done = runner.invoke(app, ["deid", str(env / "in"), "--to", str(env / "out")])
    assert done.exit_code == 0, done.output  # the stored key is used


def test_pipeline_step_deidentifies_the_item_into_the_database(env: Path) -> None:
    step = step_from_table({"kind": "deid", "key_file": str(env / "key")}, 0)
    assert isinstance(step, DeidStep) and step.to_dict()["key_file"] == str(env / "key")
    with Database.open(env / "db") as db:
        db.import_path(env / "in", workers=1)
        ctx = StepContext(db=db, item=WorkItem(STUDY), recipe_hash="test")
        outputs = step.run(ctx)
        assert outputs == (PSEUDO.uid(SERIES),)
        assert len(db.series_files(outputs[0])) == 1
        assert step.run(ctx) == outputs  # a rerun: same UIDs, nothing duplicated
        assert len(db.series_files(outputs[0])) == 1
    with pytest.raises(Exception, match="unknown field"):
        step_from_table({"kind": "deid", "key": "inline keys are not accepted"}, 0)


def test_unwritable_destination_is_a_one_line_error(env: Path) -> None:
    blocked = env / "blocked"
    blocked.write_text("a file where a folder is needed")
    done = runner.invoke(
        app, ["deid", str(env / "in"), "--to", str(blocked), "--key-file", str(env / "key")]
    )
    assert done.exit_code == 3 and "error:" in done.output and str(blocked) in done.output


def test_a_pipeline_file_knows_the_deid_step_in_a_fresh_process() -> None:
    """`dicomstation run` and Dask workers never import the deid CLI; the kind is still known."""
    import subprocess
    import sys

    code = (
        "from dicomstation.pipeline.step import step_from_table\n"
        "print(type(step_from_table({'kind': 'deid', 'key_file': 'k'}, 0)).__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "DeidStep"


def _without_file_meta(path: Path, implicit: bool) -> Path:
    """An instance as old archives and CDs keep it: the bare data set, no preamble, no meta."""
    ds = pydicom.dcmread(write_instance(path))
    ds.file_meta, ds.preamble = FileMetaDataset(), None
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=implicit, little_endian=True)
    path.write_bytes(buffer.getvalue())
    assert path.read_bytes()[128:132] != b"DICM"
    return path


@pytest.mark.parametrize("implicit", [True, False])
def test_files_without_a_file_meta_header_are_deidentified(env: Path, implicit: bool) -> None:
    """What `db import` takes, deid takes: from a folder and from the database (pipeline)."""
    bare = _without_file_meta(env / "old" / "ct", implicit)
    (env / "old" / "README.txt").write_text("not DICOM at all")
    key = ["--key-file", str(env / "key")]
    done = runner.invoke(app, ["deid", str(env / "old"), "--to", str(env / "out"), *key])
    assert done.exit_code == 1, done.output  # README.txt refused, the instance written
    assert "README.txt" in done.output and f"{bare.name}:" not in "".join(done.output.split())
    written = env / "out" / PSEUDO.uid(STUDY) / PSEUDO.uid(SERIES) / f"{PSEUDO.uid(SOP)}.dcm"
    out = pydicom.dcmread(written)
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    assert out.file_meta.TransferSyntaxUID == syntax and out.PatientIdentityRemoved == "YES"
    assert out.PixelData == b"\x01\x00\x02\x00\x03\x00\x04\x00"
    step = step_from_table({"kind": "deid", "key_file": str(env / "key")}, 0)
    with Database.open(env / "db") as db:
        db.import_path([bare], workers=1)
        ctx = StepContext(db=db, item=WorkItem(STUDY), recipe_hash="test")
        assert step.run(ctx) == (PSEUDO.uid(SERIES),)


def test_a_refused_instance_fails_the_step_naming_its_file_once(env: Path) -> None:
    us = ct_instance()
    us.Modality = "US"
    write_instance(env / "us" / "us.dcm", us)
    step = step_from_table({"kind": "deid", "key_file": str(env / "key")}, 0)
    with Database.open(env / "db") as db:
        db.import_path(env / "us", workers=1)
        (stored,) = db.study_files(STUDY)
        ctx = StepContext(db=db, item=WorkItem(STUDY), recipe_hash="test")
        with pytest.raises(DeidentificationError) as info:
            step.run(ctx)
    message = str(info.value)
    assert message.count(str(stored)) == 1 and "ultrasound" in message, message
