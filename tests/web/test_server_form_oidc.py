"""The UI's server form sets a DICOMweb server's OIDC issuer, client id, secret and scope.

The same fields as ``server add/edit --oidc-*``: saved to the settings, shown again by
Edit (the client secret only as set / not set), an insecure issuer refused with a message.
Real Chromium (Playwright) on the UI app served on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomstation.config import DicomWebServer
from dicomstation.database import Database
from dicomstation.settings import Settings
from dicomstation.web import Workstation
from dicomstation.web.app import login_url
from tests.web.browser_support import OPTIONS, chromium_context, serve_ui

pytestmark = [pytest.mark.browser]

ISSUER = "https://login.hospital.example/realms/imaging"


def test_server_form_sets_oidc_fields(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    settings_path = tmp_path / "settings.toml"
    Settings().save(settings_path)
    with (
        Database.temporary() as db,
        serve_ui(Workstation(db, settings_path)) as running,
        chromium_context((1280, 900)) as context,
    ):
        page = context.new_page()
        page.goto(login_url(running.url, OPTIONS))
        page.click("#tab-settings")
        form = page.locator("#server-form")
        form.locator("input[name=name]").fill("kc")
        form.locator("input[name=url]").fill("https://pacs.hospital.example/dicom-web")
        form.locator("input[name=issuer]").fill(ISSUER + "/")
        form.locator("input[name=client_id]").fill("dicomstation-cli")
        form.locator("input[name=client_secret]").fill("oidc-client-secret")
        form.locator("input[name=scope]").fill("openid offline_access")
        page.click("#save-server")
        expect(page.locator("#server-table tr[data-name=kc]")).to_be_visible()
        expect(form.locator("input[name=client_secret]")).to_have_value("")
        saved = Settings.load(settings_path).server("kc")
        assert isinstance(saved, DicomWebServer)
        creds = saved.credentials
        assert (creds.issuer, creds.client_id, creds.scope) == (
            ISSUER,
            "dicomstation-cli",
            "openid offline_access",
        )
        assert creds.client_secret.reveal() == "oidc-client-secret"

        page.reload()
        page.click("#tab-settings")
        page.locator("#server-table tr[data-name=kc] button", has_text="Edit").click()
        expect(form.locator("input[name=issuer]")).to_have_value(ISSUER)
        expect(form.locator("input[name=client_id]")).to_have_value("dicomstation-cli")
        expect(form.locator("input[name=scope]")).to_have_value("openid offline_access")
        assert "oidc-client-secret" not in page.content()

        form.locator("input[name=issuer]").fill("http://login.hospital.example/realms/x")
        page.click("#save-server")
        expect(page.locator("#status")).to_contain_text("must be an https:// URL")
        kept = Settings.load(settings_path).server("kc")
        assert kept.credentials.issuer == ISSUER  # type: ignore[union-attr]

        form.locator("input[name=issuer]").fill("")  # '' turns OIDC off, as --oidc-issuer ''
        page.click("#save-server")
        expect(page.locator("#status")).to_contain_text("saved server kc")
        cleared = Settings.load(settings_path).server("kc")
        assert cleared.credentials.issuer == ""  # type: ignore[union-attr]
        assert cleared.credentials.client_id == "dicomstation-cli"  # type: ignore[union-attr]
