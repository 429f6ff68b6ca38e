"""Every step kind a ledger job may hold is known to a fresh process (CLI resume, Dask workers)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_fresh_interpreter_knows_the_ui_export_step_kinds() -> None:
    # A UI export job resumed from the CLI or run on a Dask worker rebuilds its steps from the
    # ledger in a process that never imported the web UI: its kinds must still be registered.
    code = (
        "import json; from dicomstation.pipeline.step import step_kinds; "
        "print(json.dumps(step_kinds()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    kinds = set(json.loads(out.stdout))
    assert {"scene_segmentation", "rtstruct_labelmap", "export", "load", "deid"} <= kinds, kinds
