"""``dicomstation demo``: the whole flow with no PACS (interactive UI, or ``--headless`` for CI)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from dicomstation.cli.common import console, handle_errors

__all__ = ["register"]


@handle_errors
def demo(
    headless: Annotated[
        bool,
        typer.Option("--headless", help="Run the flow scripted, print what happened, and exit."),
    ] = False,
    port: Annotated[int, typer.Option(help="UI port on 127.0.0.1 (0: a free one).")] = 0,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Also open the UI in the default browser.")
    ] = False,
) -> None:
    """Start the app with a seeded demo database, served over DICOMweb as server 'demo'.

    Everything lives in a temporary folder that is deleted on exit.
    """
    from dicomstation.web.demo import demo_environment, run_headless

    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    with demo_environment(port=port, say=say) as env:
        if headless:
            run_headless(env, say)
            return
        console.print(
            f"open {env.login_url} in a browser; press Ctrl+C to stop",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if open_browser:
            import webbrowser

            webbrowser.open(env.login_url)

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt  # SIGTERM (kill, make's timeout) also cleans up

        signal.signal(signal.SIGTERM, on_term)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("stopping", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the app."""
    app.command("demo")(demo)
