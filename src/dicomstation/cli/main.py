"""The ``dicomstation`` command: one Typer app, one module per command group.

Each module exposes ``register(app)``; this file only assembles them.
"""

from __future__ import annotations

import typer

from dicomstation.cli import (
    db_cmds,
    deid_cmds,
    demo_cmds,
    export_cmds,
    listen_cmds,
    load_cmds,
    remote_cmds,
    run_cmds,
    settings_cmds,
    ui_cmds,
)

app = typer.Typer(
    name="dicomstation",
    help="DICOM workstation core: query, fetch, database, load, process, export, send, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

for _module in (
    settings_cmds,
    db_cmds,
    remote_cmds,
    listen_cmds,
    load_cmds,
    export_cmds,
    run_cmds,
    deid_cmds,
    ui_cmds,
    demo_cmds,
):
    _module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
