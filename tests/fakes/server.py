"""What every fake shares: a real HTTP server on 127.0.0.1 in a background thread, and
the recorded payloads in ``tests/fixtures/`` it serves."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

DATA = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> Any:
    """A recorded JSON payload from ``tests/fixtures/``."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class JSONHandler(BaseHTTPRequestHandler):
    """What every fake's request handler shares: JSON answers, and no access log lines in
    the test output."""

    def send_json(
        self, status: int, body: Any, *, location: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Answer ``body`` as JSON (bytes go as they are: a fake's malformed body), with a
        ``Location`` when one is given and any other ``headers``."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up on a kept-alive connection (a process exiting, a pool
    closing) is no error of the fake's: not printed as one."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalHTTPServer:
    """Subclasses set up their state, call ``super().__init__()`` and build ``_handler()``."""

    def __init__(self) -> None:
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
