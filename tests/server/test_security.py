"""Safe defaults: loopback bind, auth required elsewhere, Basic/bearer checked, CORS off."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.database import Database
from dicomstation.errors import ConfigError
from dicomstation.server import RunningServer, ServerOptions, create_app, start_in_thread


def test_refuses_to_bind_beyond_loopback_without_auth() -> None:
    with Database.temporary() as db, pytest.raises(ConfigError, match="requires Basic"):
        create_app(db, ServerOptions(host="0.0.0.0"))
    ServerOptions(host="0.0.0.0", token=Secret("t0k")).check()
    ServerOptions(host="::1").check()
    with pytest.raises(ConfigError, match="CORS origin '\\*' without a token"):
        ServerOptions(cors_origins=("*",)).check()
    with pytest.raises(ConfigError, match="CORS"):
        ServerOptions(
            cors_origins=("*",), username="u", password=Secret("p"), token=Secret("x")
        ).check()
    ServerOptions(cors_origins=("*",), token=Secret("x")).check()  # a page must know the token


@pytest.fixture()
def guarded() -> Iterator[RunningServer]:
    options = ServerOptions(username="alice", password=Secret("s3cret"), token=Secret("tok-123"))
    with Database.temporary() as db:
        running = start_in_thread(create_app(db, options))
        try:
            yield running
        finally:
            running.stop()


def test_basic_and_bearer_auth(guarded: RunningServer) -> None:
    url = f"{guarded.url}/dicom-web/studies"
    denied = httpx.get(url)
    assert denied.status_code == 401
    assert "Basic" in denied.headers["www-authenticate"]
    assert httpx.get(url, auth=("alice", "wrong")).status_code == 401
    assert httpx.get(url, auth=("alice", "s3cret")).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer tok-123"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    junk = "Basic " + base64.b64encode(b"\xff\xfe").decode()
    assert httpx.get(url, headers={"Authorization": junk}).status_code == 401
    assert "s3cret" not in denied.text


def test_cors_is_off_by_default(guarded: RunningServer) -> None:
    response = httpx.get(
        f"{guarded.url}/dicom-web/studies",
        auth=("alice", "s3cret"),
        headers={"Origin": "http://evil.example"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_when_configured() -> None:
    with Database.temporary() as db:
        app = create_app(db, ServerOptions(cors_origins=("http://viewer.example",)))
        running = start_in_thread(app)
        try:
            response = httpx.get(
                f"{running.url}/dicom-web/studies", headers={"Origin": "http://viewer.example"}
            )
            assert response.headers["access-control-allow-origin"] == "http://viewer.example"
        finally:
            running.stop()


def test_foreign_host_names_are_refused_on_loopback() -> None:
    """A DNS-rebinding page (evil.example -> 127.0.0.1) cannot use the server."""
    with Database.temporary() as db:
        running = start_in_thread(create_app(db))
        try:
            url = f"{running.url}/dicom-web/studies"
            assert httpx.get(url).status_code == 200
            assert httpx.get(url, headers={"Host": f"localhost:{running.port}"}).status_code == 200
            assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 400
        finally:
            running.stop()
