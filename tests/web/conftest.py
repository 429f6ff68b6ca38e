"""Fixtures: the demo environment (seeded database served by the UI app on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dicomstation.web.demo import DemoEnvironment, demo_environment


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoEnvironment]:
    """A seeded demo database, its UI app and server ``demo`` pointing at its DICOMweb root."""
    with demo_environment(say=lambda _text: None) as env:
        yield env


@pytest.fixture()
def api(demo: DemoEnvironment) -> Iterator[httpx.Client]:
    """An HTTP client on the UI app."""
    with httpx.Client(base_url=demo.url, timeout=60) as client:
        yield client
