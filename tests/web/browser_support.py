"""Shared set-up of the Chromium tests: the UI app on loopback, Playwright's Chromium, the
login with the launch token, and the screenshot folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dicomstation.database import Database
from dicomstation.server import RunningServer, ServerOptions, start_in_thread
from dicomstation.web import Workstation, create_ui_app
from dicomstation.web.app import login_url

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPTIONS = ServerOptions().with_launch_token()
ARTIFACTS_ROOT = Path(__file__).resolve().parents[2] / "test-artifacts"


def artifacts(name: str) -> Path:
    """The screenshot folder ``test-artifacts/<name>/``, created if missing."""
    folder = ARTIFACTS_ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def serve_ui(ws: Workstation) -> Iterator[RunningServer]:
    """The UI app of ``ws`` on a free loopback port, requiring the launch token."""
    running = start_in_thread(create_ui_app(ws, OPTIONS))
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def chromium_context(viewport: tuple[int, int]) -> Iterator[Any]:
    """A Playwright browser context of Debian's Chromium; skips when either is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if shutil.which(CHROMIUM) is None:
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield context
        finally:
            context.close()
            browser.close()


@contextmanager
def logged_in_page(context: Any, url: str) -> Iterator[Any]:
    """A page of ``context`` logged in to the UI at ``url``; fails on any uncaught page error."""
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(login_url(url, OPTIONS))
    yield page
    assert not errors, errors


@contextmanager
def viewer_station(
    tmp_path: Path, paths: Sequence[Path], viewport: tuple[int, int]
) -> Iterator[tuple[Any, Workstation]]:
    """A workstation over a temporary database of ``paths`` and a logged-in page on its UI."""
    if not paths or not all(p.exists() for p in paths):
        pytest.skip("../shared/data is not available")
    with Database.temporary() as db:
        db.import_path(list(paths))
        ws = Workstation(db, tmp_path / "settings.toml")
        with (
            serve_ui(ws) as running,
            chromium_context(viewport) as context,
            logged_in_page(context, running.url) as page,
        ):
            yield page, ws


def export_from_dialog(page: Any, kind: str, **fields: str) -> str:
    """Export from the viewer's dialog (``fields``: input id -> value); the UIDs it reports.

    The result line is empty once the dialog opens: an earlier export's "exported
    ...: UIDs" passed for the next one's while that one was still running.
    """
    from playwright.sync_api import expect

    page.click("#export-open")
    result = page.locator("#export-result")
    expect(result).to_have_text("")
    page.select_option("#export-kind", kind)
    for selector, value in fields.items():
        page.fill(f"#{selector}", value)
    page.click("#export-confirm")
    expect(result).to_contain_text(f"exported {kind}:", timeout=60_000)
    return str(result.inner_text()).split(": ", 1)[1]
