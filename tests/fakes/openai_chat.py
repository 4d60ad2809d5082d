"""A fake OpenAI-compatible Chat Completions server on 127.0.0.1, scripted per test.

It speaks the real wire format the ``openai`` SDK reads: with ``stream: true`` a
``text/event-stream`` of ``chat.completion.chunk`` objects (content deltas, tool-call
deltas by index with the arguments split across chunks, a finish chunk, then the usage
chunk when ``stream_options.include_usage`` asks for it, then ``data: [DONE]``); without
it one ``chat.completion``. The chunk shapes follow the SDK's ``ChatCompletionChunk``.

Each reply is taken from the script in order::

    fake.script(
        tool_calls(("jira_search", {"jql": "project = KAN"})),
        text("KAN-1 and KAN-2 are open."),
    )

and every request body (and its Authorization header) is recorded in ``fake.requests``.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.server import JSONHandler, LocalHTTPServer


@dataclass(frozen=True)
class Reply:
    text: str = ""
    # (name, arguments): a dict is sent as JSON, a str as it is (a model's broken JSON)
    tool_calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    status: int = 200  # not 200: an OpenAI error body with this status
    input_tokens: int = 100
    output_tokens: int = 20
    cached_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0  # seconds before answering: a model that does not answer in time
    # Streamed: these ``data:`` payloads as they are, instead of chunks made from the
    # above (a provider's odd or broken chunks, or an error event mid-stream).
    events: tuple[str, ...] = ()


def text(content: str, **kwargs: Any) -> Reply:
    return Reply(text=content, **kwargs)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], **kwargs: Any) -> Reply:
    return Reply(tool_calls=tuple(calls), **kwargs)


def raw(*events: str, **kwargs: Any) -> Reply:
    return Reply(events=events, **kwargs)


def error(status: int, **kwargs: Any) -> Reply:
    return Reply(status=status, **kwargs)


@dataclass
class Recorded:
    path: str
    authorization: str
    body: dict[str, Any]
    cookie: str = ""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.body.get("tools", [])]


class FakeOpenAIChat(LocalHTTPServer):
    MODEL = "gpt-4o-mini-2024-07-18"

    def __init__(self, *, keep_alive: bool = False) -> None:
        """``keep_alive``: answer as OpenAI does, HTTP/1.1 with streams chunked, so a
        client may send its next request on the same connection (``connections`` counts
        the ones opened); else HTTP/1.0, a connection per request."""
        self.keep_alive = keep_alive
        # A server that resets the connection after ``[DONE]``, before the body's end.
        self.reset_after_done = False
        self.connections: set[tuple[str, int]] = set()
        self.requests: list[Recorded] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self._calls = 0
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def _next(self) -> Reply:
        with self._lock:
            if not self._replies:
                return Reply(text="(the fake's script has no more replies)", status=500)
            return self._replies.pop(0)

    def _call_id(self) -> str:
        with self._lock:
            self._calls += 1
            return f"call_{self._calls:04d}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1" if fake.keep_alive else "HTTP/1.0"
            # Each chunk sent at once, as a provider's server does: with Nagle's algorithm
            # a kept connection's small writes wait for the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                fake.connections.add(self.client_address)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    Recorded(
                        self.path,
                        self.headers.get("Authorization", ""),
                        body,
                        self.headers.get("Cookie", ""),
                    )
                )
                if not self.path.endswith("/chat/completions"):
                    self.send_json(404, {"error": {"message": "Not found", "type": "invalid"}})
                    return
                reply = fake._next()
                time.sleep(reply.delay)
                if reply.status != 200:
                    self.send_json(
                        reply.status,
                        {"error": {"message": "fake vendor error text", "type": "api_error"}},
                        headers=reply.headers,
                    )
                    return
                ids = [fake._call_id() for _ in reply.tool_calls]
                if body.get("stream"):
                    include_usage = (body.get("stream_options") or {}).get("include_usage")
                    self._stream(reply, ids, bool(include_usage))
                else:
                    self.send_json(200, _completion(reply, ids))

            def _stream(self, reply: Reply, ids: list[str], include_usage: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if fake.keep_alive:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                payloads = reply.events or [
                    json.dumps(chunk) for chunk in _chunks(reply, ids, include_usage)
                ]
                events = [f"data: {payload}\n\n".encode() for payload in payloads]
                for event in [*events, b"data: [DONE]\n\n"]:
                    self.wfile.write(
                        b"%x\r\n%s\r\n" % (len(event), event) if fake.keep_alive else event
                    )
                    self.wfile.flush()
                if fake.reset_after_done:
                    linger = struct.pack("ii", 1, 0)  # close with a reset, not a FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                elif fake.keep_alive:
                    self.wfile.write(b"0\r\n\r\n")  # the body's end: the connection stays
                    self.wfile.flush()
                else:
                    self.close_connection = True

        return Handler


def _base(created: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": created,
        "model": FakeOpenAIChat.MODEL,
        "system_fingerprint": "fp_fake",
    }


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _chunks(reply: Reply, ids: list[str], include_usage: bool) -> list[dict[str, Any]]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**_base(created), "choices": [choice], "usage": None}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for start in range(0, len(reply.text), 7):  # text arrives in small pieces
        chunks.append(chunk({"content": reply.text[start : start + 7]}))
    for index, ((name, arguments), call_id) in enumerate(zip(reply.tool_calls, ids, strict=True)):
        opening = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [opening]}))
        encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
        middle = len(encoded) // 2
        for piece in (encoded[:middle], encoded[middle:]):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    chunks.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if include_usage:
        chunks.append({**_base(created), "choices": [], "usage": _usage(reply)})
    return chunks


def _completion(reply: Reply, ids: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a)},
            }
            for (n, a), call_id in zip(reply.tool_calls, ids, strict=True)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": FakeOpenAIChat.MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": _usage(reply),
    }
