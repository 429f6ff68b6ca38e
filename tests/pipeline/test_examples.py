"""The example pipelines run against `dicomstation demo` (its real DICOMweb server)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dicomstation.cli.main import app
from dicomstation.database import Database
from dicomstation.models import Level, Query
from dicomstation.pipeline import Pipeline, RunOptions
from dicomstation.settings import Settings
from dicomstation.web.demo import DEMO_SERVER, demo_environment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def test_every_example_parses() -> None:
    for path in sorted(EXAMPLES.glob("*.toml")):
        pipeline = Pipeline.from_file(path)
        assert pipeline.steps, path
        assert Pipeline.from_json(pipeline.to_json()).job_id == pipeline.job_id, path


def test_demo_examples_run_against_the_demo(tmp_path: Path) -> None:
    with demo_environment(say=lambda _text: None) as env:
        settings_path = env.workstation.settings_path
        server = Settings.load(settings_path).server(DEMO_SERVER)
        bone = Pipeline.from_file(EXAMPLES / "demo-bone.toml")
        options = RunOptions(database=tmp_path / "db", servers={DEMO_SERVER: server})
        report = bone.run(options)
        assert (report.done, report.failed) == (1, {})
        segs = env.pacs.find(Query(Level.SERIES, {"Modality": "SEG"}))
        assert len(segs) == 1 and segs[0].description == "Bone (pipeline)"
        assert len(env.pacs.find(Query(Level.SERIES, {"Modality": "SR"}))) == 1

        result = runner.invoke(
            app,
            ["run", str(EXAMPLES / "local-derived.toml"), "--db", str(tmp_path / "db"), "--json"],
            env={"DICOMSTATION_CONFIG": str(settings_path)},
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["done"] == 1
        with Database.open(tmp_path / "db") as db:
            sc = db.find(Query(Level.SERIES, {"Modality": "OT"})) + db.find(
                Query(Level.SERIES, {"Modality": "CT"})
            )
        numbers = [s.series_number for s in sc]
        assert len(sc) >= 3 and len(numbers) == len(set(numbers))  # source, derived, SC

        again = bone.run(options)  # the demo PACS still has one SEG
        assert again.already_done == 1
        assert len(env.pacs.find(Query(Level.SERIES, {"Modality": "SEG"}))) == 1
