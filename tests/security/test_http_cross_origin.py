"""A page of another origin must not read patient data, start a send or delete a study
(issue 10: "``ui --cors '*'`` is accepted without auth (a page from another origin then
read patient data, started a send and deleted a study)").

Chromium first opens the UI's login URL, so it holds the UI's cookie; then it opens
an attacker's page on another port of 127.0.0.1 (the same *site* as the UI, so a
SameSite cookie alone would not stop it) that tries every request it can.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomstation.config import Secret
from dicomstation.models import Level, Query
from dicomstation.server import ServerOptions
from dicomstation.web.app import login_url
from tests.security.http_support import Station, chromium_page, station

pytestmark = pytest.mark.browser

TOKEN = "the-ui-launch-token-0123456789-abcdef"
ATTACK = """<!doctype html><meta charset="utf-8"><title>attack</title><script>
const ui = new URLSearchParams(location.search).get("ui");
const study = new URLSearchParams(location.search).get("study");
const results = {};
async function attempt(name, path, options) {
  try {
    const response = await fetch(ui + path, {credentials: "include", ...options});
    let body = "";
    try { body = await response.text(); } catch (e) { body = "unreadable"; }
    results[name] = {status: response.status, type: response.type, body: body.slice(0, 2000)};
  } catch (e) { results[name] = {error: String(e)}; }
}
const send = JSON.stringify({server: "sink", uids: [study]});
(async () => {
  await attempt("read_studies", "/api/servers/local/studies", {});
  await attempt("read_dicomweb", "/dicom-web/studies", {});
  await attempt("read_metadata", `/dicom-web/studies/${study}/metadata`, {});
  await attempt("send_json", "/api/send",
    {method: "POST", headers: {"Content-Type": "application/json"}, body: send});
  await attempt("send_simple", "/api/send", {method: "POST", mode: "no-cors", body: send});
  await attempt("delete", `/api/local/${study}`, {method: "DELETE"});
  await attempt("delete_simple", `/api/local/${study}`, {method: "DELETE", mode: "no-cors"});
  await attempt("save_server", "/api/servers/sink", {method: "PUT",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({url: "http://x.example"})});
  window.attackResults = results;
})();
</script>"""


@pytest.fixture()
def attacker() -> Iterator[str]:
    """An HTTP server on another loopback port serving the attack page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = ATTACK.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CONFIGS = {
    "token": ServerOptions(token=Secret(TOKEN)),
    "token-cors-star": ServerOptions(token=Secret(TOKEN), cors_origins=("*",)),
    "token-cors-attacker-listed": None,  # built per test: the attacker's origin is allowed
    "no-token": ServerOptions(),
}


def _options(name: str, attacker_origin: str) -> ServerOptions:
    options = CONFIGS[name]
    if options is None:
        return ServerOptions(token=Secret(TOKEN), cors_origins=(attacker_origin,))
    return options


@pytest.mark.parametrize("config", list(CONFIGS))
def test_foreign_page_cannot_read_send_or_delete(
    config: str, attacker: str, tmp_path: Path
) -> None:
    options = _options(config, attacker)
    with station(tmp_path, options) as st, chromium_page() as page:
        page.goto(login_url(st.url, options))  # the user opened the UI: the cookie is set
        own = page.evaluate("fetch('/api/servers/local/studies').then(r => r.status)")
        assert own == 200, "the UI's own page works with the cookie"
        page.goto(f"{attacker}/?ui={st.url}&study={st.study_uid}")
        page.wait_for_function("window.attackResults !== undefined", timeout=20_000)
        results: dict[str, dict[str, Any]] = page.evaluate("window.attackResults")
        _assert_nothing_leaked(results, st)
        _assert_nothing_changed(st)


def _assert_nothing_leaked(results: dict[str, dict[str, Any]], st: Station) -> None:
    for name, result in results.items():
        text = json.dumps(result)
        assert st.study_uid not in result.get("body", ""), (name, text)
        assert "CompressedSamples" not in text, (name, text)  # CT_small's patient name
        readable = "status" in result and result.get("type") != "opaque"
        if readable:  # the browser let the page see the answer: it must be a refusal
            assert result["status"] in (401, 403), (name, text)


def _assert_nothing_changed(st: Station) -> None:
    assert st.ws.db.find(Query(Level.STUDY)), "the study was not deleted"
    jobs = httpx.get(f"{st.url}/api/jobs", headers=st.auth() if st.options.token else {})
    assert jobs.status_code == 200 and jobs.json() == [], "no send was started"
    assert st.sink.find(Query(Level.STUDY)) == []
    assert "x.example" not in json.dumps(st.ws.settings().server("sink").url)
