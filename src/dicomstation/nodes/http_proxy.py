"""The proxy the environment names for a URL (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY).

httpx reads these variables only for a client that has no transport of its own;
our DICOMweb clients have one (large reads, bounded decoding: see
:func:`dicomstation.auth.http_client`), so the choice is made here, once per
client (a client talks to one origin), with the rules curl and requests follow:

- ``<scheme>_proxy`` for the URL's scheme, else ``all_proxy``, in either case
  (:func:`urllib.request.getproxies`; ``HTTP_PROXY`` is ignored in a CGI process,
  where ``REQUEST_METHOD`` is set);
- ``no_proxy``: a list separated by commas or spaces; ``*`` matches every host; a
  name matches itself and its subdomains (a leading dot is optional); an IP
  address or network (``10.0.0.0/8``) matches the addresses in it; an entry with
  ``:port`` matches that port only;
- loopback hosts (``localhost``, ``127.0.0.0/8``, ``::1``) are always reached
  directly, as browsers do: a proxy's loopback is not ours (the demo, a local
  Orthanc, our own server).
"""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import httpx

from dicomstation.config import is_loopback
from dicomstation.errors import ConfigError

__all__ = ["environment_proxy", "proxy_transport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def environment_proxy(url: str) -> str | None:
    """The proxy URL the environment names for ``url``, or None (direct)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or is_loopback(host):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme.lower()) or proxies.get("all")
    if not proxy:
        return None
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    if _bypassed(host, port, proxies.get("no", "")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """Whether an entry of ``no_proxy`` matches ``host`` (and ``port``)."""
    for entry in no_proxy.replace(",", " ").split():
        entry = entry.strip().lower()
        if entry == "*":
            return True
        name, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _matches(host, name):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host[:port]``, ``[v6]:port`` or a bare IPv6 address / network."""
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else None
    return entry, None


def _matches(host: str, name: str) -> bool:
    try:
        network = ipaddress.ip_network(name, strict=False)
    except ValueError:
        network = None
    if network is not None:
        try:
            return ipaddress.ip_address(host) in network
        except ValueError:
            return False  # an address entry never matches a host name
    name = name.lstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def proxy_transport(proxy: str, server: str, **options: Any) -> httpx.HTTPTransport:
    """httpx's transport through ``proxy`` for ``server``.

    Raises
    ------
    ConfigError
        When httpx cannot use the proxy (another scheme; SOCKS without ``socksio``),
        naming it without its credentials.
    """
    try:
        return httpx.HTTPTransport(proxy=proxy, **options)
    except ImportError:
        reason = "a SOCKS proxy needs the socksio package: pip install 'httpx[socks]'"
    except ValueError:
        reason = "only http://, https:// and socks5:// proxies are supported"
    parts = urlsplit(proxy)
    shown = f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    raise ConfigError(f"server {server!r}: cannot use the proxy {shown} ({reason})")
