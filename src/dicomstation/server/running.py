"""Run an ASGI app with uvicorn (in a background thread for tests, demo and benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from dicomstation.errors import ConfigError

__all__ = ["RunningServer", "free_port", "start_in_thread", "uvicorn_config"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    """A uvicorn server running in a thread; :meth:`stop` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        """Root URL of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)


def uvicorn_config(
    app: FastAPI,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> uvicorn.Config:
    """The uvicorn configuration every dicomstation server uses (HTTPS with a cert/key pair).

    Idle keep-alive connections are closed after 30 s; request bodies are held to
    their own limits by :class:`~dicomstation.server.guard.Guard`.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=30,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )


def start_in_thread(
    app: FastAPI,
    host: str = "127.0.0.1",
    port: int = 0,
    timeout: float = 20.0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0: a free port) and wait until it accepts requests.

    Raises
    ------
    ConfigError
        If the server does not start (port taken, unreadable certificate...).
    """
    port = port or free_port(host)
    try:
        server = uvicorn.Server(uvicorn_config(app, host, port, tls_cert, tls_key))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the server could not start on {host}:{port}: {exc}") from None
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server could not start on {host}:{port}")
        time.sleep(0.02)
    return RunningServer(server, thread, host, port, "https" if tls_cert else "http")
