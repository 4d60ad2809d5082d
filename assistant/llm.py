"""The one seam to the language model: the official ``openai`` SDK, Chat Completions with
tools, streamed.

It takes the key and base URL as arguments (the caller chose them), reads the model
settings, and turns the SDK's exceptions into ``core.errors``: a vendor's message never
reaches a user or a log, only its status.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx2
import openai
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from openai.types.chat import ChatCompletion

from core.errors import ProviderError, ProviderUnavailable
from core.http import sdk_tls_context
from core.netguard import GuardedTransport
from core.storable import storable_text


class LLMKeyRefused(ProviderError):
    """The provider refused the key (401/403): only the key's owner can fix that."""

    status = 502
    code = "llm_key_refused"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text exactly as the model wrote it


@dataclass
class Completion:
    """One model answer: its text, the tools it wants called, and what it cost."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def as_message(self) -> dict[str, Any]:
        """The assistant message to put back into the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


@dataclass
class _PartialCall:
    id: str = ""
    name: list[str] = field(default_factory=list)  # pieces, joined once (not += each)
    name_length: int = 0
    arguments: list[str] = field(default_factory=list)


# What is read past a stream's ``[DONE]`` so its connection can be kept: the end of the
# body only, from a server that behaves.
DRAIN_AFTER_DONE = 64 * 1024


class _KeptAfterDone(httpx2.SyncByteStream):
    """A streamed answer whose connection goes back to the pool once the model is done.

    The SDK stops reading at ``data: [DONE]`` and closes the response before the body's
    end is read, so the HTTP layer cannot reuse the connection and the run's next call
    opens another (a TLS handshake each against a real provider). Read past ``[DONE]``,
    the end is there: this reads it (a bounded amount) before closing. Any other early
    close (an error mid-stream) closes at once, as before."""

    def __init__(self, inner: httpx2.SyncByteStream) -> None:
        self._inner = inner
        self._chunks: Iterator[bytes] | None = None
        self._tail = b""

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = iter(self._inner)
        for chunk in self._chunks:
            self._tail = (self._tail + chunk)[-16:]
            yield chunk

    def close(self) -> None:
        try:
            if self._chunks is not None and self._tail.rstrip().endswith(b"data: [DONE]"):
                drained = 0
                for chunk in self._chunks:
                    drained += len(chunk)
                    if drained > DRAIN_AFTER_DONE:
                        break
        except (httpx2.HTTPError, OSError):
            pass  # the answer is whole: a connection dropped after it only goes unreused
        finally:
            self._inner.close()


def _keep_after_done(response: httpx2.Response) -> None:
    response.stream = _KeptAfterDone(response.stream)  # type: ignore[arg-type]


def chat_request(
    *, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The streamed Chat Completions request, in wire form (JSON as sent)."""
    request: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": settings.OPENAI_MAX_TOKENS,
        "temperature": settings.OPENAI_TEMPERATURE,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        request["tools"] = tools
        request["parallel_tool_calls"] = True
    return request


_shared_http: dict[str, httpx2.Client] = {}
_shared_lock = threading.Lock()


def _shared_http_client() -> httpx2.Client:
    """The process's one HTTP client for model providers at their configured URLs: its
    kept connections serve every run, so a run's first call needs no new connection (a TLS
    handshake against a real provider). Keys travel per request, never with a connection.
    Hosts a user gave go through ``GuardedTransport`` on a client per run instead (its
    deadline is per request, not for threads to share)."""
    client = _shared_http.get("provider")
    if client is None:
        with _shared_lock:
            client = _shared_http.get("provider")
            if client is None:
                client = _shared_http["provider"] = _http_client(transport=None)
    return client


def _http_client(*, transport: httpx2.BaseTransport | None) -> httpx2.Client:
    return openai.DefaultHttpxClient(
        # A redirect would carry the key wherever the answer points.
        follow_redirects=False,
        # Cookies a provider sets (its CDN's) are not kept: on a shared client they would
        # go out with other users' requests.
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        transport=transport,
        # One TLS context per process: building one loads the CA store (~20 ms a call).
        verify=sdk_tls_context(),
        event_hooks={"response": [_keep_after_done]},
    )


def _forget_after_fork() -> None:
    """A forked child (a prefork worker) must not use its parent's sockets, nor a lock
    another thread of the parent held."""
    global _shared_lock
    _shared_http.clear()
    _shared_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class ChatClient:
    """One SDK client for a key and base URL, over the process's kept connections (or, for
    a host the user gave, a guarded connection of its own): a run's model calls share it.
    Close it when done."""

    @sensitive_variables("api_key")
    def __init__(self, *, api_key: str, base_url: str, user_host: bool = False) -> None:
        # ``user_host``: the base URL came from a user's key, so the connection goes
        # through ``GuardedTransport`` (no private addresses).
        self._own_http = (
            _http_client(
                transport=GuardedTransport(allow_private=settings.KEYS_ALLOW_PRIVATE_BASE_URLS)
            )
            if user_host
            else None
        )
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=None,
            project=None,
            timeout=settings.OPENAI_TIMEOUT,
            max_retries=settings.OPENAI_MAX_RETRIES,
            http_client=self._own_http or _shared_http_client(),
        )

    def close(self) -> None:
        """Its own guarded connection closed; the shared ones stay for the next run."""
        if self._own_http is not None:
            self._own_http.close()

    def _stream(self, request: dict[str, Any]) -> openai.Stream[object]:
        """``chat.completions.create(**request)`` less two of the SDK's walks that give
        nothing back here. Its request transform walks the whole request (system prompt,
        history, every tool schema) through a TypedDict transformer to return the same JSON:
        0.9 ms a call with five tools, 7 ms with mcp-atlassian's 98; ours is built in wire
        form already (tests/assistant/test_llm_request.py checks the transform gives it
        back unchanged). And each chunk read comes back as plain JSON rather than built
        into ``ChatCompletionChunk`` models (``Stream[object]``): building them was about
        0.8 ms of a call's 2 ms of CPU here, for the few fields ``_read_stream`` reads. The
        SDK's own request path still sends it and reads it: the client's auth, timeout,
        retries, error classes, the event stream's parsing and its error events."""
        return self._client.post(
            "/chat/completions",
            body=request,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.Stream[object],
        )

    def complete(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Stream one completion, calling ``on_text`` with each piece of text as it
        arrives. Tool-call deltas are joined by index, so parallel calls come back whole;
        the usage arrives in the last chunk."""
        request = chat_request(model=model, messages=messages, tools=tools)
        try:
            return _read_stream(self._stream(request), model, on_text)
        except (openai.AuthenticationError, openai.PermissionDeniedError):
            raise LLMKeyRefused(
                "Your OpenAI key was refused by the model provider: check or replace it under Keys."
            ) from None
        except openai.RateLimitError as exc:
            raise ProviderUnavailable(
                "The model provider is busy (rate limited): try again shortly.",
                retry_after=_retry_after(exc.response),
            ) from None
        except openai.APITimeoutError:
            raise ProviderUnavailable(
                "The model provider did not answer in time: try again."
            ) from None
        except openai.APIConnectionError:
            raise ProviderUnavailable(
                "The model provider could not be reached: try again."
            ) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise ProviderUnavailable(
                    f"The model provider failed (HTTP {exc.status_code}): try again."
                ) from None
            raise ProviderError(
                f"The model provider refused the request (HTTP {exc.status_code})."
            ) from None
        except (
            openai.APIError,
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            OverflowError,  # a number JSON reads as infinite
            RecursionError,  # JSON nested past Python's limit
        ):
            raise ProviderError("The model provider sent an answer Kay could not read.") from None


@sensitive_variables("api_key")
def chat_complete(
    *,
    api_key: str,
    base_url: str,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    user_host: bool = False,
    on_text: Callable[[str], None] | None = None,
) -> Completion:
    """One completion (see :class:`ChatClient`)."""
    client = ChatClient(api_key=api_key, base_url=base_url, user_host=user_host)
    try:
        return client.complete(model=model, messages=messages, tools=tools, on_text=on_text)
    finally:
        client.close()


# What one answer may hold. A provider the user named may be hostile: more tool calls
# than a model is offered tools (OpenAI's limit is 128) would each be answered and sent
# back, round after round; counts past any context window (a run sums at most nine calls
# into its 32-bit columns), a negative one, or cached tokens beyond the input could not
# be recorded (the reaper would retry them for ever).
MAX_TOOL_CALLS = 128
MAX_CALL_TOKENS = 10_000_000
MODEL_NAME_MAX = 200  # what usage records keep
TOOL_NAME_MAX = 256  # OpenAI's are 64 at most; a longer one names no tool
# Text is published as it arrives, but pieces closer together than this go out as one
# event: a stream of a hundred thousand tiny pieces must not become as many events.
TEXT_EVENT_SECONDS = 0.04


@dataclass
class _TextOut:
    """Text handed on as it arrives, pieces within ``TEXT_EVENT_SECONDS`` of the last
    hand-over joined (the first at once; what is held, at the latest by the stream's end)."""

    on_text: Callable[[str], None] | None
    held: list[str] = field(default_factory=list)
    sent_at: float = float("-inf")

    def add(self, piece: str) -> None:
        if self.on_text is None:
            return
        self.held.append(piece)
        if time.monotonic() - self.sent_at >= TEXT_EVENT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.on_text is not None and self.held:
            text, self.held = "".join(self.held), []
            self.sent_at = time.monotonic()
            self.on_text(text)


def _read_stream(
    stream: Iterable[Any], model: str, on_text: Callable[[str], None] | None
) -> Completion:
    """A streamed answer's chunks (``chat.completion.chunk`` as JSON) joined into one
    completion (its first choice: Kay asks for one). A chunk not shaped as one, or with
    figures no answer can have, raises ``TypeError``, ``KeyError`` or ``AttributeError``,
    which ``ChatClient.complete`` turns into "could not read". What the model wrote is
    kept as far as a run can store it: a NUL or a lone surrogate in its text becomes
    U+FFFD, tool calls past ``MAX_TOOL_CALLS`` are dropped (the answer itself, and its
    usage, still count)."""
    completion = Completion(model=model)
    text: list[str] = []
    out = _TextOut(on_text)
    calls: dict[int, _PartialCall] = {}
    for chunk in stream:
        if chunk.get("model"):
            completion.model = _model_name(chunk["model"])
        usage = chunk.get("usage")
        if usage:
            completion.input_tokens = _count(usage.get("prompt_tokens"))
            completion.output_tokens = _count(usage.get("completion_tokens"))
            details = usage.get("prompt_tokens_details") or {}
            completion.cached_tokens = _count(details.get("cached_tokens"))
            if completion.cached_tokens > completion.input_tokens:
                raise TypeError("cached tokens are part of the input")
        choices = chunk.get("choices") or ()
        if not choices:
            continue
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        if content:
            piece = _text(content)
            text.append(piece)
            out.add(piece)
        for part in delta.get("tool_calls") or ():
            index = _count(part.get("index"), 2**31)
            partial = calls.get(index)
            if partial is None:
                if len(calls) >= MAX_TOOL_CALLS:
                    continue
                partial = calls[index] = _PartialCall()
            if part.get("id"):
                partial.id = _text(part["id"])
            function = part.get("function")
            if function:
                if function.get("name"):
                    partial.name.append(_text(function["name"]))
                    partial.name_length += len(partial.name[-1])
                    if partial.name_length > TOOL_NAME_MAX:
                        raise TypeError("a tool call's name is not one")
                if function.get("arguments"):
                    partial.arguments.append(_text(function["arguments"]))
    out.flush()
    completion.content = "".join(text)
    completion.tool_calls = [
        ToolCall(
            id=call.id or f"call_{index}",
            name="".join(call.name),
            arguments="".join(call.arguments),
        )
        for index, call in sorted(calls.items())
    ]
    return completion


def _text(value: Any) -> str:
    """Text as a run can store it (``core.storable``)."""
    if not isinstance(value, str):
        raise TypeError("a chunk's text field is not text")
    return storable_text(value)


def _count(value: Any, limit: int = MAX_CALL_TOKENS) -> int:
    """A count as JSON gives it: a whole number from 0 to ``limit`` (absent: 0)."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= limit:
        raise TypeError("a chunk's count is not one")
    return value


def _model_name(value: Any) -> str:
    name = _text(value)
    if len(name) > MODEL_NAME_MAX or not name.isprintable():
        raise TypeError("a chunk's model name is not one")
    return name


def _retry_after(response: Any) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except (AttributeError, ValueError):
        return None
