"""Pipeline steps and the scanner leave Python's warnings machinery to its owner.

``warnings.catch_warnings`` swaps the warnings module's process-wide filters and
``showwarning`` for the length of its block (the standard library says it is not
thread-safe). The pipeline wrapped every step in one: while a step ran on one of the
in-process executor's threads, a warning raised by any other thread of the process (the
user's own, the web UI's, the other step) was recorded into that step's list and never
shown, and two steps whose blocks overlapped could leave the filters and
``showwarning`` of one of them installed for good. The scanner did the same for files
pydicom reads (it told a truncated file by the warning pydicom raises). Now neither
touches that state: warnings reach whatever the application set up, and the scanner
decides truncation from the bytes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import highdicom as hd
import pytest
from pydicom.uid import generate_uid

from dicomstation.database import Database
from dicomstation.pipeline import Pipeline, RunOptions
from dicomstation.pipeline.segmenters import (
    Segmentation,
    ThresholdSegmenter,
    register_segmenter,
)
from tests.synth import write_ct_series

_OTHER = "raised by another thread of the application while a step ran"


class _Waiting:
    """Segments by threshold once another thread has raised a warning (events, no sleeps)."""

    def __init__(self, entered: threading.Event, warned: threading.Event) -> None:
        self.entered, self.warned = entered, warned

    def segment(self, volume: hd.Volume) -> Segmentation:
        self.entered.set()
        assert self.warned.wait(30), "the other thread did not warn"
        return ThresholdSegmenter(0, 3000).segment(volume)


@pytest.fixture()
def events() -> Iterator[tuple[threading.Event, threading.Event]]:
    entered, warned = threading.Event(), threading.Event()

    def factory(_params: Mapping[str, Any]) -> _Waiting:
        return _Waiting(entered, warned)

    register_segmenter("test-waiting", factory)
    yield entered, warned
    warned.set()  # never leave a step waiting


def test_a_warning_of_another_thread_during_a_step_reaches_the_application(
    tmp_path: Path, events: tuple[threading.Event, threading.Event]
) -> None:
    entered, warned = events
    with Database.open(tmp_path / "db") as db:
        study = generate_uid()
        db.import_path(write_ct_series(tmp_path / "ct", 6, size=32, study_uid=study), copy=True)
    pipeline = Pipeline.from_dict(
        {
            "name": "waiting",
            "source": {"kind": "local", "level": "study"},
            "steps": [
                {"kind": "load"},
                {"kind": "segment", "segmenter": "test-waiting"},
                {"kind": "export", "kinds": ["seg"]},
            ],
        }
    )

    def other() -> None:
        if entered.wait(60):
            warnings.warn(_OTHER, UserWarning, stacklevel=1)
        warned.set()

    thread = threading.Thread(target=other)
    with warnings.catch_warnings(record=True) as caught:  # the application's own capture
        warnings.simplefilter("always")
        filters, show = list(warnings.filters), warnings.showwarning
        thread.start()
        report = pipeline.run(RunOptions(database=tmp_path / "db"))
        thread.join(30)
        assert (list(warnings.filters), warnings.showwarning) == (filters, show)
    assert (report.done, report.failed) == (1, {})
    assert _OTHER in [str(w.message) for w in caught]
