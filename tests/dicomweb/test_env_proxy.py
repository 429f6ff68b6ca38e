"""The proxy environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), as curl uses it.

A hospital network often reaches a cloud PACS only through the proxy its
environment names. The DICOMweb client gives httpx its own transport (large reads,
bounded decoding), and httpx then ignores the environment's proxies: the client
went straight to the server while curl, dicomweb-client and our own OIDC discovery
went through the proxy. Here the PACS's host name does not resolve
(``pacs.invalid``), so only a request sent through the proxy (our fault proxy on
127.0.0.1, in front of the real Orthanc) can succeed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from dicomstation.errors import ConfigError, ConnectionFailedError
from dicomstation.models import Level, Query
from dicomstation.nodes.dicomweb import DicomWebNode
from tests.conftest import PROXY_VARIABLES
from tests.dicomweb.conftest import server_config
from tests.dicomweb.faultproxy import FaultProxy
from tests.peers import OrthancServer


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine running the tests (either case)."""
    for name in (*PROXY_VARIABLES, "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.fixture()
def proxy(orthanc: OrthancServer) -> Iterator[FaultProxy]:
    with FaultProxy(orthanc.dicomweb_url) as running:
        yield running


def _unresolvable(orthanc: OrthancServer) -> str:
    """Orthanc's DICOMweb URL with a host name that does not resolve (RFC 2606)."""
    return f"http://pacs.invalid:{urlsplit(orthanc.dicomweb_url).port}/dicom-web"


def _proxy_root(proxy: FaultProxy) -> str:
    host, port = proxy.server_address[:2]
    return f"http://{host!s}:{port}"


def _studies(orthanc: OrthancServer) -> int:
    with DicomWebNode.from_config(server_config(orthanc, _unresolvable(orthanc))) as node:
        return len(node.find(Query(Level.STUDY)))


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_the_environment_proxy_is_used(
    orthanc: OrthancServer, proxy: FaultProxy, clean_env: pytest.MonkeyPatch, variable: str
) -> None:
    clean_env.setenv(variable, _proxy_root(proxy))
    assert _studies(orthanc) >= 0
    assert proxy.faults.requests, "the request did not go through the environment's proxy"
    assert all("pacs.invalid" in line for line in proxy.faults.requests)


def test_no_proxy_names_hosts_reached_directly(
    orthanc: OrthancServer, proxy: FaultProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", _proxy_root(proxy))
    clean_env.setenv("NO_PROXY", "example.org,.invalid")
    with pytest.raises(ConnectionFailedError, match="orthanc"):
        _studies(orthanc)  # direct: pacs.invalid does not resolve
    assert not proxy.faults.requests
    clean_env.setenv("NO_PROXY", "pacs.invalid:1")  # another port: through the proxy
    assert _studies(orthanc) >= 0
    assert proxy.faults.requests


def test_loopback_servers_are_reached_directly(
    orthanc: OrthancServer, proxy: FaultProxy, clean_env: pytest.MonkeyPatch
) -> None:
    """A proxy's loopback is not ours: the demo, a local Orthanc, our own server."""
    clean_env.setenv("HTTP_PROXY", _proxy_root(proxy))
    port = urlsplit(orthanc.dicomweb_url).port
    for host in ("127.0.0.1", "localhost"):
        url = f"http://{host}:{port}/dicom-web"
        with DicomWebNode.from_config(server_config(orthanc, url)) as node:
            node.find(Query(Level.STUDY))
    assert not proxy.faults.requests


def test_an_https_proxy_is_not_used_for_http(
    orthanc: OrthancServer, proxy: FaultProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTPS_PROXY", _proxy_root(proxy))
    with DicomWebNode.from_config(server_config(orthanc)) as node:
        node.find(Query(Level.STUDY))
    assert not proxy.faults.requests


def test_the_configured_proxy_wins_over_the_environment(
    orthanc: OrthancServer, proxy: FaultProxy, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens
    config = server_config(orthanc, _unresolvable(orthanc), proxy=_proxy_root(proxy))
    with DicomWebNode.from_config(config) as node:
        node.find(Query(Level.STUDY))
    assert proxy.faults.requests


@pytest.mark.parametrize(
    ("url", "no_proxy", "direct"),
    [
        ("https://pacs.example.org/dicom-web", "example.org", True),
        ("https://pacs.example.org/dicom-web", ".example.org", True),
        ("https://example.org/dicom-web", ".example.org", True),
        ("https://badexample.org/dicom-web", "example.org", False),  # a suffix, not a substring
        ("https://pacs.example.org:8443/x", "pacs.example.org:443", False),
        ("https://pacs.example.org/x", "pacs.example.org:443", True),  # the scheme's port
        ("https://10.1.2.3/x", "10.0.0.0/8", True),
        ("https://11.1.2.3/x", "10.0.0.0/8", False),
        ("https://[fd00::5]:8042/x", "fd00::5", True),
        ("https://[fd00::5]:8042/x", "[fd00::5]:8042", True),
        ("https://[fd00::5]:8042/x", "fd00::/8", True),
        ("https://[fd00::5]:8042/x", "[fd00::5]:8043", False),
        ("https://[::1]:8042/x", "", True),  # loopback: always direct
        ("https://localhost/x", "", True),
        ("https://PACS.Example.ORG/x", "pacs.example.org", True),
        ("https://pacs.example.org/x", "other.org  example.org", True),  # spaces separate too
        ("https://pacs.example.org/x", "", False),
    ],
)
def test_no_proxy_rules(
    clean_env: pytest.MonkeyPatch, url: str, no_proxy: str, direct: bool
) -> None:
    from dicomstation.nodes.http_proxy import environment_proxy

    clean_env.setenv("HTTPS_PROXY", "proxy.local:3128")
    clean_env.setenv("NO_PROXY", no_proxy)
    assert environment_proxy(url) == (None if direct else "http://proxy.local:3128")


def test_a_cgi_process_ignores_http_proxy(clean_env: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY can be set by a client's ``Proxy:`` header in CGI (httpoxy): not trusted."""
    from dicomstation.nodes.http_proxy import environment_proxy

    clean_env.setenv("HTTP_PROXY", "http://attacker:3128")
    assert environment_proxy("http://pacs:8042/dicom-web") == "http://attacker:3128"
    clean_env.setenv("REQUEST_METHOD", "GET")
    assert environment_proxy("http://pacs:8042/dicom-web") is None


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        ("socks5://proxyuser:s3cret@127.0.0.1:1080", "socksio"),
        ("ftp://proxyuser:s3cret@127.0.0.1:21", "only http://, https:// and socks5://"),
    ],
)
def test_a_proxy_httpx_cannot_use_is_one_line_without_its_password(
    orthanc: OrthancServer, clean_env: pytest.MonkeyPatch, proxy: str, reason: str
) -> None:
    if proxy.startswith("socks5") and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed: httpx can use a SOCKS proxy")
    clean_env.setenv("ALL_PROXY", proxy)
    with pytest.raises(ConfigError) as raised:
        DicomWebNode.from_config(server_config(orthanc, _unresolvable(orthanc)))
    message = str(raised.value)
    assert reason in message and "'orthanc'" in message and "\n" not in message
    assert "s3cret" not in message and "proxyuser" not in message
    assert f"{urlsplit(proxy).scheme}://127.0.0.1:" in message
