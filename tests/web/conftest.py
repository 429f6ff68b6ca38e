"""Fixtures: the demo environment (seeded database served by the UI app on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from dicomstation.models import Level, Query
from dicomstation.web.demo import DemoEnvironment, demo_environment


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoEnvironment]:
    """The demo PACS and the UI, with every demo study already fetched into the local database."""
    with demo_environment(say=lambda _text: None) as env:
        studies = env.workstation.query("demo", Query(Level.STUDY))
        job = env.workstation.fetch("demo", [(s["study_uid"], []) for s in studies])
        assert env.workstation.jobs.wait(job.id).state == "done"
        yield env


@pytest.fixture()
def api(demo: DemoEnvironment) -> Iterator[httpx.Client]:
    """An HTTP client on the UI app, carrying its per-launch token."""
    headers = {"Authorization": f"Bearer {demo.token}"}
    with httpx.Client(base_url=demo.url, timeout=60, headers=headers) as client:
        yield client
