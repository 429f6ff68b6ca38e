"""``dicomstation viewer``: install and locate OHIF, served by ``dicomstation ui`` at /viewer/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dicomstation.cli.common import console, handle_errors

__all__ = ["register"]

viewer_app = typer.Typer(
    help="OHIF viewer served by `dicomstation ui` at /viewer/ (same origin as the UI).",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option("--to", help="Install folder (default: the user data dir's dicomstation/ohif)."),
]


@viewer_app.command("install")
@handle_errors
def install(to: RootOption = None) -> None:
    """Download OHIF (npm package @ohif/app, pinned version) with npm and unpack it.

    Needs npm on PATH. Does nothing when the pinned version is installed already.
    """
    from dicomstation.web.ohif import OHIF_PACKAGE, OHIF_VERSION, find_ohif, install_ohif

    if find_ohif(to) is None:
        console.print(f"downloading {OHIF_PACKAGE}@{OHIF_VERSION} with npm…", highlight=False)
    installed = install_ohif(to)
    console.print(
        f"OHIF {installed.version} installed in {installed.path}", highlight=False, soft_wrap=True
    )


@viewer_app.command("status")
@handle_errors
def status(to: RootOption = None) -> None:
    """Say whether OHIF is installed, and where (exit code 1 when it is not)."""
    from dicomstation.web.ohif import INSTALL_HINT, find_ohif

    found = find_ohif(to)
    if found is None:
        console.print(INSTALL_HINT, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"OHIF {found.version} in {found.path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``viewer`` group to the app."""
    app.add_typer(viewer_app, name="viewer")
