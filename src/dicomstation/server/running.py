"""Run an ASGI app with uvicorn in a background thread (tests, demo, benchmarks, the UI)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from dicomstation.errors import ConfigError

__all__ = ["RunningServer", "free_port", "start_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RunningServer:
    """A uvicorn server running in a thread; :meth:`stop` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """Root URL of the server."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_in_thread(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 20.0
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0: a free port) and wait until it accepts requests.

    Raises
    ------
    ConfigError
        If the server does not start (port taken...).
    """
    port = port or free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigError(f"the server could not start on {host}:{port}")
        time.sleep(0.02)
    return RunningServer(server, thread, host, port)
