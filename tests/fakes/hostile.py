"""A user's "OpenAI-compatible" server that misbehaves on purpose: it answers ``GET
…/models`` slowly, at length, compressed, or with something that is not a model list.

It records how many bytes of the body it sent (fewer than ``total`` when the client hung up
first) and the ``Accept-Encoding`` it was asked for.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.fakes.server import LocalHTTPServer

MODELS = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()


@dataclass
class Answer:
    """What to send: a status line, headers and a body, each part at once or trickled."""

    body: bytes = MODELS
    status: int = 200
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    trickle_head: bool = False  # one byte every ``interval``, headers included
    trickle_body: bool = False
    interval: float = 0.05


def compressed(size: int) -> Answer:
    """A valid model list padded to ``size`` bytes, gzip-compressed (~1000:1)."""
    body = MODELS[:-1] + b', "pad": "' + b"0" * size + b'"}'
    return Answer(body=gzip.compress(body), headers=(("Content-Encoding", "gzip"),))


def huge(size: int) -> Answer:
    """A valid model list padded to ``size`` bytes."""
    return Answer(body=MODELS[:-1] + b', "pad": "' + b"0" * size + b'"}')


class HostileServer(LocalHTTPServer):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sent = 0
        self.accept_encoding: str | None = None
        super().__init__()

    @property
    def total(self) -> int:
        """Bytes in the whole body."""
        return len(self.answer.body)

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                fake.accept_encoding = self.headers.get("Accept-Encoding")
                answer = fake.answer
                head = [f"HTTP/1.1 {answer.status} X", f"Content-Type: {answer.content_type}"]
                head += [f"{name}: {value}" for name, value in answer.headers]
                head += [f"Content-Length: {len(answer.body)}", "Connection: close"]
                raw_head = ("\r\n".join(head) + "\r\n\r\n").encode()
                try:
                    self._send(raw_head, trickle=answer.trickle_head)
                    trickle = answer.trickle_head or answer.trickle_body
                    self._send(answer.body, trickle=trickle, counted=True)
                except OSError:  # the client hung up
                    pass

            def _send(self, data: bytes, *, trickle: bool, counted: bool = False) -> None:
                step = 1 if trickle else 64 * 1024
                for start in range(0, len(data), step):
                    self.wfile.write(data[start : start + step])
                    if counted:
                        fake.sent = min(start + step, len(data))
                    if trickle:
                        time.sleep(fake.answer.interval)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
