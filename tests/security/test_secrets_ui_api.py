"""The UI API never hands a stored secret to a new host (``PUT /api/servers/{name}``).

The real UI app runs on loopback; two HTTP servers of our own stand for the
server the password was entered for and the one an attacker points it to, and
record every ``Authorization`` header they receive.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from dicomstation.config import DicomWebServer, DimseServer
from dicomstation.settings import Settings
from tests.security.client_support import HostileServer, basic, empty_qido, ui_api

PASSWORD = "hunter2-secret"


def _auth_headers(server: HostileServer) -> list[str | None]:
    return [s.headers.get("authorization") for s in server.seen]


def _query(api: httpx.Client, name: str) -> None:
    response = api.get(f"/api/servers/{name}/studies")
    assert response.status_code == 200, response.text


def test_a_new_url_gets_no_stored_password(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with (
        HostileServer(empty_qido) as legit,
        HostileServer(empty_qido) as evil,
        ui_api(settings) as api,
    ):
        body = {"url": f"{legit.url}/dicom-web", "username": "alice", "password": PASSWORD}
        assert api.put("/api/servers/pacs", json=body).json()["password"] == "set"
        _query(api, "pacs")
        assert _auth_headers(legit) == [basic("alice", PASSWORD)]
        # the attack: same name, the attacker's URL, the username, no password
        moved = api.put("/api/servers/pacs", json={"url": f"{evil.url}/x", "username": "alice"})
        assert moved.status_code == 200 and moved.json()["password"] == "not set"
        _query(api, "pacs")
        assert _auth_headers(evil) == [basic("alice", "")]  # the user it was given, no password
        assert PASSWORD not in settings.read_text()
        # the user giving the password again for the new address is fine
        body = {"url": f"{evil.url}/x", "username": "alice", "password": "new-pw"}
        api.put("/api/servers/pacs", json=body)
        _query(api, "pacs")
        assert _auth_headers(evil)[-1] == basic("alice", "new-pw")
        assert len(legit.seen) == 1


def test_same_origin_edits_keep_the_password(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with HostileServer(empty_qido) as legit, ui_api(settings) as api:
        body = {"url": f"{legit.url}/dicom-web", "username": "alice", "password": PASSWORD}
        api.put("/api/servers/pacs", json=body)
        # another path on the same origin, secret fields left empty as the form sends them
        form = {"protocol": "dicomweb", "url": f"{legit.url}/other/", "username": "alice"}
        api.put("/api/servers/pacs", json={**form, "password": "", "token": ""})
        _query(api, "pacs")
        assert _auth_headers(legit) == [basic("alice", PASSWORD)]


def test_https_to_http_needs_explicit_confirmation(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with ui_api(settings) as api:
        body = {"url": "https://pacs.invalid/dicom-web", "username": "a", "token": "tok-secret"}
        api.put("/api/servers/pacs", json=body)
        down = {"url": "http://pacs.invalid/dicom-web", "username": "a"}
        refused = api.put("/api/servers/pacs", json=down)
        assert refused.status_code == 400
        assert "https to http" in refused.json()["detail"]
        kept = Settings.load(settings).server("pacs")
        assert isinstance(kept, DicomWebServer) and kept.url.startswith("https://")
        assert kept.credentials.token.reveal() == "tok-secret"
        confirmed = api.put("/api/servers/pacs", json={**down, "allow_insecure_downgrade": True})
        assert confirmed.status_code == 200, confirmed.text
        assert confirmed.json()["token"] == "not set"  # another origin: the token stays behind
    assert "tok-secret" not in settings.read_text()


def test_global_credentials_only_for_servers_that_opt_in(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with HostileServer(empty_qido) as other, ui_api(settings) as api:
        api.put("/api/auth", json={"username": "bob", "password": PASSWORD})
        api.put("/api/servers/other", json={"url": other.url})
        _query(api, "other")
        assert _auth_headers(other) == [None]
        api.put("/api/servers/other", json={"url": other.url, "use_global_auth": True})
        _query(api, "other")
        assert _auth_headers(other)[-1] == basic("bob", PASSWORD)


def test_editing_keeps_settings_the_form_does_not_carry(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[servers.pacs]\nurl = "https://pacs.invalid/dw"\nverify_tls = false\n'
        'ca_bundle = "/etc/ssl/h.pem"\nproxy = "http://proxy.invalid:3128"\ntimeout = 7.5\n'
        "[servers.pacs.limits]\nmax_qido_bytes = 1234\n"
        '[servers.old]\nprotocol = "dimse"\nae_title = "PACS"\nhost = "h"\nport = 104\n'
        'move_destination = "STATION2"\ntimeout = 12.0\n'
    )
    form = {"protocol": "dicomweb", "url": "https://pacs.invalid/dw", "username": "u"}
    form |= {"password": "", "token": "", "ae_title": "", "host": "", "port": ""}
    dimse = {"protocol": "dimse", "ae_title": "PACS2", "host": "h2", "port": "105"}
    with ui_api(settings) as api:
        assert api.put("/api/servers/pacs", json=form).status_code == 200
        assert api.put("/api/servers/old", json=dimse).status_code == 200
    loaded = Settings.load(settings)
    web, old = loaded.servers["pacs"], loaded.servers["old"]
    assert isinstance(web, DicomWebServer) and isinstance(old, DimseServer)
    assert (web.ca_bundle, web.proxy, web.timeout) == (
        "/etc/ssl/h.pem",
        "http://proxy.invalid:3128",
        7.5,
    )
    assert web.verify_tls is False and web.limits.max_qido_bytes == 1234
    assert web.credentials.username == "u"
    assert (old.ae_title, old.port, old.move_destination, old.timeout) == (
        "PACS2",
        105,
        "STATION2",
        12.0,
    )


def test_a_proxy_password_is_never_listed(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with ui_api(settings) as api:
        proxied = {"url": "https://pacs.invalid/dw", "proxy": f"http://p:{PASSWORD}@proxy:3128"}
        assert api.put("/api/servers/pacs", json=proxied).status_code == 200
        listing = api.get("/api/servers").text
    assert PASSWORD not in listing and "proxy:3128" in listing


def test_a_url_with_a_password_is_refused(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    with ui_api(settings) as api:
        response = api.put("/api/servers/pacs", json={"url": f"https://eve:{PASSWORD}@h/dw"})
        assert response.status_code == 400
        assert "user/password" in response.json()["detail"]
        assert PASSWORD not in response.text
        bad_flag = api.put("/api/servers/pacs", json={"url": "https://h/dw", "verify_tls": "maybe"})
        assert bad_flag.status_code == 400 and "verify_tls" in bad_flag.json()["detail"]
    assert not settings.exists()
