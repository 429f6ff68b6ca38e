"""The ``dicomstation`` command: one Typer app, one module per command group.

Each module exposes ``register(app)``. This file only lists the commands: name ->
(module, one-line help). A command's module is imported when the command runs
(``cli/lazy.py``), so ``dicomstation --help`` and each command start without
importing the others; tests/volumes/test_startup.py checks the table against the
modules and guards what a bare ``--help`` imports.
"""

from __future__ import annotations

import typer

from dicomstation.cli.lazy import Entry, lazy_group

COMMANDS: dict[str, Entry] = {
    "server": ("settings_cmds", "Configure remote DICOMweb and DIMSE servers."),
    "auth": (
        "settings_cmds",
        "Global DICOMweb credentials (--use-global-auth servers); OIDC login/logout/show.",
    ),
    "db": ("db_cmds", "The local DICOM database."),
    "query": (
        "remote_cmds",
        "Query a server for studies, series or instances (QIDO-RS or C-FIND).",
    ),
    "metadata": (
        "remote_cmds",
        "Show the headers of a remote study or series without fetching its images.",
    ),
    "fetch": (
        "remote_cmds",
        "Fetch a study (or some series/instances) into the local database; resumable.",
    ),
    "send": (
        "remote_cmds",
        "Send local studies, series, instances or files to a server (STOW-RS or C-STORE).",
    ),
    "listen": ("listen_cmds", "Receive C-STORE into the local database until Ctrl-C."),
    "load": (
        "load_cmds",
        "Load a series as a volume (Slicer-style loadables) and optionally write it out.",
    ),
    "export": ("export_cmds", "Export results as new DICOM records."),
    "segment": (
        "export_cmds",
        "Threshold-segment a series; store a DICOM SEG and a TID 1500 statistics SR.",
    ),
    "run": ("run_cmds", "Run (or resume) a pipeline over its source's work items."),
    "jobs": ("run_cmds", "Pipeline jobs in the ledger: list, show, retry, cancel."),
    "deid": (
        "deid_cmds",
        "De-identify with the PS3.15 Annex E Basic Profile (and options); report per attribute.",
    ),
    "deid-key": (
        "deid_cmds",
        "Show whether a de-identification key is set; --generate stores a new one.",
    ),
    "ui": (
        "ui_cmds",
        "Serve the web UI at http://HOST:PORT/ and DICOMweb at http://HOST:PORT/dicom-web.",
    ),
    "viewer": (
        "viewer_cmds",
        "OHIF viewer served by `dicomstation ui` at /viewer/ (same origin as the UI).",
    ),
    "worker": (
        "worker_cmds",
        "Perform segmentation workitems of a UPS-RS worklist (claim, segment, send, complete).",
    ),
    "demo": (
        "demo_cmds",
        "Start the app with a seeded demo database, served over DICOMweb as server 'demo'.",
    ),
}

app = typer.Typer(
    name="dicomstation",
    help="DICOM workstation core: query, fetch, database, load, process, export, send, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors in plain click text, as the help: rich not imported
    cls=lazy_group(COMMANDS),
)


@app.callback()
def _main() -> None:
    """DICOM workstation core: query, fetch, database, load, process, export, send, serve."""


if __name__ == "__main__":  # pragma: no cover
    app()
