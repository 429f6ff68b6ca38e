"""httpx errors and HTTP statuses are translated in one place, each to a named NodeError."""

from __future__ import annotations

import inspect

import httpx
import pytest

from dicomstation.errors import (
    AuthenticationError,
    ConnectionFailedError,
    NodeError,
    ProtocolError,
    RemoteStatusError,
)
from dicomstation.nodes.http_errors import MAPPING, check_status, is_retryable, redact, translate


def _httpx_exceptions() -> list[type[Exception]]:
    found = {
        obj for _, obj in inspect.getmembers(httpx, inspect.isclass) if issubclass(obj, Exception)
    }
    stack = list(found)
    while stack:  # include subclasses not exported by name
        for sub in stack.pop().__subclasses__():
            if sub.__module__.startswith("httpx") and sub not in found:
                found.add(sub)
                stack.append(sub)
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _httpx_exceptions(), ids=lambda c: c.__name__)
def test_every_httpx_exception_is_mapped(cls: type[Exception]) -> None:
    assert cls in MAPPING, f"httpx.{cls.__name__} has no explicit entry in http_errors.MAPPING"


def _instance(cls: type[Exception]) -> Exception:
    request = httpx.Request("GET", "http://user:pw@example.org/x")
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("boom", request=request, response=httpx.Response(503, request=request))
    if issubclass(cls, httpx.RequestError):
        return cls("boom http://user:pw@proxy:3128", request=request)
    if cls is httpx.StreamConsumed or cls is httpx.StreamClosed:
        return cls()
    if cls in (httpx.ResponseNotRead, httpx.RequestNotRead):
        return cls()
    return cls("boom")


@pytest.mark.parametrize("cls", _httpx_exceptions(), ids=lambda c: c.__name__)
def test_translation_names_server_operation_uid(cls: type[Exception]) -> None:
    err = translate(_instance(cls), server="pacs", operation="WADO-RS", uid="1.2.3")
    assert isinstance(err, NodeError)
    assert (err.server, err.operation, err.uid) == ("pacs", "WADO-RS", "1.2.3")
    assert "WADO-RS on pacs for 1.2.3" in str(err)
    assert "pw" not in str(err)


def test_transport_errors_are_retryable_connection_failures() -> None:
    request = httpx.Request("GET", "http://h/")
    for cls in (httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        err = translate(cls("x", request=request), server="s", operation="QIDO-RS")
        assert isinstance(err, ConnectionFailedError) and is_retryable(err)
    err = translate(httpx.DecodingError("x", request=request), server="s", operation="QIDO-RS")
    assert isinstance(err, ProtocolError) and not is_retryable(err)


@pytest.mark.parametrize(
    "status, cls, retry",
    [
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, RemoteStatusError, False),
        (400, RemoteStatusError, False),
        (429, RemoteStatusError, True),
        (500, RemoteStatusError, True),
        (503, RemoteStatusError, True),
        (501, RemoteStatusError, False),
    ],
)
def test_status_mapping(status: int, cls: type[NodeError], retry: bool) -> None:
    response = httpx.Response(
        status,
        json={"Message": "nope", "Details": "detail"},
        request=httpx.Request("GET", "http://h/"),
    )
    with pytest.raises(cls) as info:
        check_status(response, server="pacs", operation="STOW-RS", uid="9.9")
    assert info.value.status == status and is_retryable(info.value) is retry
    assert "nope" in str(info.value)
    check_status(httpx.Response(200), server="pacs", operation="STOW-RS")


def test_redact_userinfo() -> None:
    assert (
        redact("http://alice:s3cret@host/x and https://tok@h2")
        == "http://***@host/x and https://***@h2"
    )


def test_retry_after_is_honoured() -> None:
    import time

    from dicomstation.transfer import RetryPolicy, with_retries

    response = httpx.Response(
        429, headers={"Retry-After": "1"}, request=httpx.Request("GET", "http://h/")
    )
    calls: list[float] = []

    def attempt() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            check_status(response, server="s", operation="QIDO-RS")
        return "ok"

    policy = RetryPolicy(attempts=2, backoff=0.01)
    assert with_retries(attempt, policy=policy, retryable=is_retryable) == "ok"
    assert calls[1] - calls[0] >= 0.95
