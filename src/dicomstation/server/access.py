"""Who may use the server: Host names, credentials, and where a browser request comes from.

Credentials are accepted in three forms, all compared in constant time:

- ``Authorization: Basic`` (when a username and password are configured),
- the token as ``Authorization: Bearer <t>`` / ``Authorization: token <t>`` or ``?token=<t>``,
- the token in the cookie the UI sets when the login URL ``/?token=<t>`` is opened.

The cookie is *ambient*: a browser attaches it to any request for this host,
including requests made by pages of other origins (another port of 127.0.0.1 is
even "same-site"). It is therefore honoured only for same-origin requests, as
told by the browser's ``Sec-Fetch-Site`` and ``Origin`` headers; a page of
another origin needs the token itself, which it cannot know.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from dicomstation.server.options import ServerOptions, is_loopback

__all__ = ["LOOPBACK_NAMES", "Access", "cookie_name", "host_allowed", "request_origin"]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


def cookie_name(port: int) -> str:
    """Name of the token cookie for a port (cookies are per host, not per port)."""
    return f"dicomstation-token-{port}"


def _host_name(host_header: str) -> str:
    """The host name of a Host header, without port; IPv6 brackets removed."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def host_allowed(options: ServerOptions, host_header: str) -> bool:
    """Whether a Host header may reach a server bound to ``options.host``.

    On loopback only loopback names and the bound address are accepted, so a
    DNS-rebinding page (``evil.example`` resolving to 127.0.0.1) gets 400.
    """
    if not is_loopback(options.host):
        return True
    name = _host_name(host_header.strip()).lower()
    return name in LOOPBACK_NAMES or name == options.host.strip("[]").lower()


def request_origin(scheme: str, headers: Mapping[str, str]) -> str:
    """The origin a same-origin page of this server has (``scheme://host[:port]``)."""
    return f"{scheme}://{headers.get('host', '')}"


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


class Access:
    """Checks the credentials of a request against :class:`ServerOptions`."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options

    def token_ok(self, value: str) -> bool:
        """Whether ``value`` is the configured token."""
        token = self.options.token
        return bool(token) and bool(value) and _same(value, token.reveal())

    def _header_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() in ("bearer", "token"):
            return self.token_ok(value)
        if scheme.lower() == "basic" and self.options.username and self.options.password:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (ValueError, UnicodeDecodeError, binascii.Error):
                return False
            user, _, password = decoded.partition(":")
            good_user = _same(user, self.options.username)
            good_pw = _same(password, self.options.password.reveal())
            return good_user and good_pw
        return False

    def query_token(self, query_string: bytes) -> str:
        """The ``token`` query parameter ('' when absent)."""
        values = parse_qs(query_string.decode("latin-1")).get("token", [])
        return values[0] if values else ""

    def cookie_token(self, headers: Mapping[str, str], port: int) -> str:
        """The token cookie for ``port`` ('' when absent or malformed)."""
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except CookieError:
            return ""
        morsel = jar.get(cookie_name(port))
        return morsel.value if morsel is not None else ""

    @staticmethod
    def same_origin(headers: Mapping[str, str], own_origin: str) -> bool:
        """Whether a browser says the request comes from a page of this server."""
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in _SAME_ORIGIN_FETCH:
            return False
        origin = headers.get("origin")
        return origin is None or origin == own_origin

    def authorized(
        self, headers: Mapping[str, str], query_string: bytes, port: int, own_origin: str
    ) -> bool:
        """Whether the request carries valid credentials (see the module docstring)."""
        if not self.options.auth_required:
            return True
        header = headers.get("authorization", "")
        if header:
            return self._header_ok(header)
        if self.token_ok(self.query_token(query_string)):
            return True
        cookie = self.cookie_token(headers, port)
        return bool(cookie) and self.same_origin(headers, own_origin) and self.token_ok(cookie)
