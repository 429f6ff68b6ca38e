"""No import and no call of dicomstation changes another library's global behaviour.

A fresh interpreter snapshots what other libraries keep process-wide (h11's
receive buffer class, httpcore's HTTP/1.1 connection classes, pynetdicom's
``_config``, its classes and module names, the pynetdicom loggers, the warnings
filters), then imports every
dicomstation module, fetches over HTTP from a local server with our client,
starts a storage listener, runs a C-ECHO against it, stops it, and compares.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_SCRIPT = textwrap.dedent(
    r"""
    import http.server, importlib, logging, pkgutil, threading, warnings, tempfile
    from pathlib import Path

    import h11._receivebuffer, httpcore._sync.http11, httpcore._async.http11
    import pynetdicom
    import pynetdicom.ae, pynetdicom.association, pynetdicom.dul, pynetdicom.transport
    from pynetdicom import _config
    # scipy.special adds its own "always" filter when imported: scipy's, not ours
    import scipy.special  # noqa: F401

    def loggers():
        names = ["pynetdicom", ""] + sorted(
            n for n in logging.root.manager.loggerDict if n.startswith("pynetdicom")
        )
        out = {}
        for name in names:
            lg = logging.getLogger(name)
            out[name] = (lg.level, list(lg.handlers), list(lg.filters), lg.propagate, lg.disabled)
        return out

    def snapshot():
        return {
            "h11.ReceiveBuffer": dict(vars(h11._receivebuffer.ReceiveBuffer)),
            "httpcore sync HTTP11Connection": dict(vars(httpcore._sync.http11.HTTP11Connection)),
            "httpcore async HTTP11Connection": dict(
                vars(httpcore._async.http11.AsyncHTTP11Connection)
            ),
            "pynetdicom._config": {k: getattr(_config, k) for k in dir(_config) if k.isupper()},
            "pynetdicom classes": {
                cls.__qualname__: dict(vars(cls))
                for cls in (
                    pynetdicom.ae.ApplicationEntity,
                    pynetdicom.association.Association,
                    pynetdicom.dul.DULServiceProvider,
                    pynetdicom.transport.AssociationSocket,
                    pynetdicom.transport.RequestHandler,
                    pynetdicom.transport.AssociationServer,
                )
            },
            "pynetdicom module names": {
                (mod.__name__, name): getattr(mod, name)
                for mod in (pynetdicom.ae, pynetdicom.transport, pynetdicom.association)
                for name in dir(mod)
                if not name.startswith("__")
            },
            "loggers": loggers(),
            "warnings.filters": list(warnings.filters),
            "logging disable": logging.root.manager.disable,
        }

    before = snapshot()

    import dicomstation
    for info in pkgutil.walk_packages(dicomstation.__path__, "dicomstation."):
        importlib.import_module(info.name)

    from dicomstation.auth import http_client
    from dicomstation.config import DicomWebServer, DimseServer
    from dicomstation.database import Database
    from dicomstation.nodes.dimse import DimseNode
    from dicomstation.nodes.listener import StorageListener

    body = bytes(range(256)) * 8192  # 2 MiB: several large reads

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
        with http_client(DicomWebServer("local", url)) as client:
            got = client.get(url + "/x")
            assert got.status_code == 200 and got.content == body, "fetch failed"
    finally:
        server.shutdown()
        server.server_close()

    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp) / "db")
        listener = StorageListener(db, ae_title="NOGLOBALS", port=0).start()
        try:
            peer = DimseServer("self", "NOGLOBALS", "127.0.0.1", listener.port, timeout=10.0)
            node = DimseNode(peer)
            node.echo()
            node.close()
        finally:
            listener.stop()
        db.close()

    after = snapshot()
    changed = [key for key in before if before[key] != after[key]]
    for key in changed:
        if isinstance(before[key], dict):
            keys = sorted(set(before[key]) | set(after[key]), key=str)
            old, new = before[key], after[key]
            diff = [k for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]
            print(f"CHANGED {key}: {diff}")
        elif isinstance(before[key], list):
            print(f"CHANGED {key}: added {[f for f in after[key] if f not in before[key]]}")
        else:
            print(f"CHANGED {key}")
    print("OK" if not changed else "DIRTY")
    """
)


def test_no_global_effects(tmp_path: Path) -> None:
    """Using dicomstation leaves h11, httpcore, pynetdicom, loggers and warnings as they were."""
    script = tmp_path / "probe.py"
    script.write_text(_SCRIPT)
    run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines and lines[-1] == "OK", run.stdout


def test_large_reads_are_on_for_the_pinned_versions() -> None:
    """The pinned httpx/httpcore are those the large-read transport was checked on, and used."""
    from dicomstation.auth import http_client
    from dicomstation.config import DicomWebServer
    from dicomstation.nodes.http_transport import LargeReadTransport, large_reads_supported

    assert large_reads_supported()
    with http_client(DicomWebServer("x", "http://127.0.0.1:9/dicom-web")) as client:
        inners = [getattr(t, "inner", t) for t in vars(client).values()]  # BoundedDecoding
        transports = [t for t in inners if isinstance(t, LargeReadTransport)]
        assert transports and transports[0].large_reads
