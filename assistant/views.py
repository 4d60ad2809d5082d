"""The Assistant page (/dashboard/assistant/): a chat over the same service as ``/ask``,
its answer streamed as Server-Sent Events, and the user's past conversations.

The stream runs the loop in a thread of its own and relays what it reports (text as the
model writes it, each tool call as it starts and ends) through a queue; the response
iterates the queue, so the first words reach the browser while the model still writes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nh3
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from markdown_it import MarkdownIt

from accounts.authentication import user_of
from accounts.models import User
from assistant.api import AskThrottle
from assistant.async_views import slot_taking_view
from assistant.events import (
    DONE,
    SlotStreamingResponse,
    run_events_follow,
    run_events_last_seq,
    stream_slot_take,
    stream_with_slot,
)
from assistant.models import AssistantRun, InteractiveSession
from assistant.selectors import (
    run_detail_for,
    run_paid_with,
    session_get_for_user,
    sessions_for,
)
from assistant.serializers import AskInputSerializer, ask_body
from assistant.services.runs import run_ask_start, run_enqueue, run_outcome
from assistant.services.sessions import session_delete
from core.errors import ApplicationError, NotFound
from core.parsers import JSONParser, ParseError
from core.ratelimit import limit

MODES = {
    "one_shot": ("One-shot", "A single question; nothing is remembered."),
    "interactive": (
        "Conversation",
        "Kay remembers this conversation and saves it under Conversations.",
    ),
    "confirm": (
        "Ask first",
        "Kay reads freely but asks before it changes anything, and remembers this chat.",
    ),
}
EXAMPLES = (
    "List all tickets in project KAN",
    "What is KAN-1 about, and who is working on it?",
    "Create a ticket in project KAN with title 'Fix login bug'",
)
SIDEBAR_SESSIONS = 30
SERVER_ERROR = "Something went wrong on Kay's side: try again."
logger = logging.getLogger(__name__)
RESULT_SUMMARY = 500

# Answers are Markdown: rendered with raw HTML off, then sanitised by nh3 (as model
# descriptions are), so no model text reaches the page as markup of its own.
_markdown = MarkdownIt("commonmark", {"html": False})
TAGS = {
    "p", "br", "hr", "a", "em", "strong", "code", "pre", "blockquote",
    "ul", "ol", "li", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def answer_html(text: str) -> SafeString:
    """The model's Markdown as safe HTML (headings start at h3; links https only)."""
    tokens = _markdown.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 2)}"
    html = _markdown.renderer.render(tokens, _markdown.options, {})
    clean = nh3.clean(
        html,
        tags=TAGS,
        attributes={"a": {"href", "title"}, "ol": {"start"}},
        url_schemes={"https"},
        link_rel="nofollow noopener noreferrer",
    )
    return mark_safe(clean)  # noqa: S308 (sanitised by nh3 just above)


# What the user can do about each refusal: links shown beside its message.
ERROR_LINKS: dict[str, list[tuple[str, str]]] = {
    "jira_not_connected": [("Connect Jira", "connections:list")],
    "connection_needs_reauth": [("Reconnect Jira", "connections:list")],
    "no_llm_key": [("Add a key", "keys:new")],
    "insufficient_credits": [("Buy credits", "billing:index"), ("Add a key", "keys:new")],
    "llm_key_refused": [("Check your keys", "keys:list")],
}


def error_event(exc: ApplicationError) -> dict[str, Any]:
    """The error as ``/ask`` words it, with links to where the user can fix it."""
    links = [
        {"label": label, "url": reverse(name)} for label, name in ERROR_LINKS.get(exc.code, [])
    ]
    return {**exc.as_dict()["error"], "status": exc.status, "links": links}


# --- The page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """A tool call of a reopened conversation or of a run, as the pages show it."""

    name: str
    arguments: str
    result: str
    # A run's record has them; a reopened conversation's history does not.
    duration_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str = ""
    html: SafeString | None = None
    steps: tuple[Step, ...] = ()


def _turns(history: list[dict[str, Any]]) -> list[Turn]:
    """A stored conversation as the page shows it: each question, then the answer with
    the tool calls that led to it."""
    results = {
        m.get("tool_call_id"): m.get("content") or "" for m in history if m["role"] == "tool"
    }
    turns: list[Turn] = []
    steps: list[Step] = []
    for message in history:
        if message["role"] == "user":
            turns.append(Turn("user", text=str(message.get("content") or "")))
        elif message["role"] == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                try:
                    arguments = json.dumps(json.loads(function.get("arguments") or "{}"), indent=2)
                except (ValueError, RecursionError):  # the model's text, stored as written
                    arguments = str(function.get("arguments"))
                result = str(results.get(call.get("id"), ""))[:RESULT_SUMMARY]
                steps.append(Step(str(function.get("name", "")), arguments, result))
            if message.get("content"):
                turns.append(
                    Turn("assistant", html=answer_html(message["content"]), steps=tuple(steps))
                )
                steps = []
    return turns


def _page(request: HttpRequest, session: InteractiveSession | None) -> HttpResponse:
    user = user_of(request)
    return render(
        request,
        "assistant/page.html",
        {
            "sessions": sessions_for(user=user)[:SIDEBAR_SESSIONS],
            "current": session,
            "turns": _turns(session.messages) if session else [],
            "modes": MODES,
            "mode": "interactive" if session else "one_shot",
            "examples": EXAMPLES,
        },
    )


@login_required
@require_GET
def assistant_page(request: HttpRequest) -> HttpResponse:
    return _page(request, None)


def _get_session_for_user(request: HttpRequest, session_id: int) -> InteractiveSession:
    """The signed-in user's conversation, else 404 (another user's is as unknown)."""
    try:
        return session_get_for_user(user=user_of(request), session_id=session_id)
    except NotFound:
        raise Http404("No conversation with this id.") from None


@login_required
@require_GET
def assistant_session(request: HttpRequest, session_id: int) -> HttpResponse:
    return _page(request, _get_session_for_user(request, session_id))


@login_required
@require_http_methods(["GET", "POST"])
def assistant_session_delete(request: HttpRequest, session_id: int) -> HttpResponse:
    session = _get_session_for_user(request, session_id)
    if request.method == "GET":
        return render(request, "assistant/session_confirm_delete.html", {"session": session})
    session_delete(session=session)
    messages.success(request, f"Deleted “{session}”.")
    return redirect("assistant:page")


# --- The stream -------------------------------------------------------------------------

Emit = Callable[[str, dict[str, Any]], None]
RELAYED = ("text", "tool_start", "tool_end")


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def _relay(run_id: int, after: int, emit: Emit) -> dict[str, Any]:
    """Pass the worker's progress on until the run's ``done``; its data ({}: none came
    within the task's time limit, so the run is still queued or running)."""
    try:
        async with asyncio.timeout(float(settings.CELERY_TASK_TIME_LIMIT)):
            async for event in run_events_follow(run_id=run_id, after=after):
                if event["kind"] in RELAYED:
                    emit(event["kind"], event["data"])
                elif event["kind"] == DONE:
                    return dict(event["data"])
    except TimeoutError:
        pass
    return {}


def _run(user: User, fields: dict[str, Any], emit: Emit) -> None:
    """Queue the run for a worker (as /ask does) and relay what it reports, in this
    stream's own thread (with its own database connection)."""
    try:
        start = run_ask_start(
            user=user,
            prompt=fields["prompt"],
            interactive=fields["interactive"],
            confirm=fields["confirm"],
            session_id=fields.get("session_id"),
        )
        run = start.run
        after = run_events_last_seq(run_id=run.pk)
        run_enqueue(run_id=run.pk)
        # The relay waits for minutes: not holding a connection (of a pool of a few) meanwhile.
        if not connection.in_atomic_block:
            connection.close()
        done = async_to_sync(_relay)(run.pk, after, emit)
        if "error" in done:
            error = done["error"]
            raise ApplicationError(error["message"], code=error["code"], status=done["httpStatus"])
        run.refresh_from_db()
        outcome = run_outcome(run=run, confirmation_token=start.confirmation_token)
        if outcome is None:
            raise ApplicationError(
                "Kay is still working on it: reload the page in a moment.",
                code="still_running",
                status=202,
            )
        if isinstance(outcome, ApplicationError):
            raise outcome
        body = ask_body(outcome)
        if outcome.status == "completed":
            body["html"] = answer_html(outcome.response)
        if outcome.session_id is not None:
            session = session_get_for_user(user=user, session_id=outcome.session_id)
            body["session"] = {
                "id": session.pk,
                "title": str(session),
                "url": reverse("assistant:session", args=[session.pk]),
                "deleteUrl": reverse("assistant:session_delete", args=[session.pk]),
            }
        emit("done", body)
    except ApplicationError as exc:
        emit("error", error_event(exc))
    except Exception:
        logger.exception("assistant stream run failed")
        emit("error", {"code": "server_error", "message": SERVER_ERROR, "links": []})
    finally:
        connection.close()


def _events(user: User, fields: dict[str, Any]) -> Iterator[bytes]:
    """The run's events as it goes. Its stream slot is given back by the response (its
    close, and under ASGI the stream's end), on the request's thread: not here, where
    under ASGI a worker thread steps the generator and a database connection opened for
    the count (no Redis) would stay open there."""
    events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()

    def run() -> None:
        try:
            _run(user, fields, lambda event, data: events.put((event, data)))
        finally:
            events.put(None)

    threading.Thread(target=run, name=f"assistant-stream-{user.pk}", daemon=True).start()
    yield _sse("start", {"mode": fields["mode"], "at": time.time()})
    while (item := events.get()) is not None:
        yield _sse(*item)


async def _async_events(events: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The same events for an ASGI server: each wait happens in a worker thread."""
    step = sync_to_async(lambda: next(events, None), thread_sensitive=False)
    while (chunk := await step()) is not None:
        yield chunk


@login_required
@require_POST
async def assistant_stream(request: HttpRequest) -> HttpResponseBase:
    """``POST`` a JSON ``{prompt, mode, session_id?}``; an ``text/event-stream`` of
    ``start``, ``text`` (deltas), ``tool_start``/``tool_end``, then ``done`` (the ``/ask``
    body, with the answer as safe HTML) or ``error``."""
    # Async, so that a client gone while the stream is set up gives its slot back.
    return await slot_taking_view(_stream_start, request)


def _stream_start(request: HttpRequest) -> HttpResponseBase:
    user = user_of(request)
    try:
        # The APIs' parser: a deep or surrogate-laden body is a 400, never a 500.
        body = JSONParser().parse(io.BytesIO(request.body or b"{}"))
    except ParseError:
        body = None
    mode = body.get("mode", "one_shot") if isinstance(body, dict) else None
    if not isinstance(mode, str) or mode not in MODES:
        return _invalid({"mode": ["Choose one_shot, interactive or confirm."]})
    data = AskInputSerializer(
        data={
            "prompt": body.get("prompt"),
            # On the page, Ask first is a conversation too: a follow-up ("assign it to
            # me") needs the turn before it.
            "interactive": mode in ("interactive", "confirm"),
            "confirm": mode == "confirm",
            "session_id": body.get("session_id") if mode != "one_shot" else None,
        }
    )
    if not data.is_valid():
        return _invalid({name: [str(e) for e in errors] for name, errors in data.errors.items()})
    try:
        limit("assistant_ask", user.pk, AskThrottle.rate)
        if data.validated_data.get("session_id"):
            # Someone else's conversation is refused before the stream starts.
            session_get_for_user(user=user, session_id=data.validated_data["session_id"])
        slot = stream_slot_take(user_id=user.pk)
    except ApplicationError as exc:
        return JsonResponse({"error": error_event(exc)}, status=exc.status, headers=exc.headers)
    events = _events(user, {**data.validated_data, "mode": mode})
    # Under ASGI Django would read a plain iterator to its end before sending anything.
    stream: Iterator[bytes] | AsyncIterator[bytes] = events
    if isinstance(request, ASGIRequest):
        stream = stream_with_slot(_async_events(events), slot)
    response = SlotStreamingResponse(stream, slot=slot, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _invalid(fields: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": "validation_error", "message": "Check the question.", "fields": fields}},
        status=400,
    )


# --- A run's page -----------------------------------------------------------------------

RUN_STATUS = {
    "queued": ("Queued", "warn", "Waiting for a worker to pick it up."),
    "running": ("Running", "warn", "Kay is still working on it: reload in a moment."),
    "completed": ("Completed", "ok", ""),
    "pending_confirmation": (
        "Waiting for you",
        "warn",
        "Kay asked before changing anything: approve or cancel the action in the chat.",
    ),
    "cancelled": ("Cancelled", "", "You cancelled the action Kay asked about."),
    "failed": ("Failed", "bad", ""),
}


def _pretty(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, indent=2)


def _run_steps(records: list[dict[str, Any]]) -> tuple[Step, ...]:
    """A run's stored tool calls (``AskOutcome.tool_calls``' shape) as steps."""
    return tuple(
        Step(
            name=str(record.get("name", "")),
            arguments=_pretty(record.get("arguments", {})),
            result=str(record.get("result") or ""),
            duration_ms=record.get("durationMs"),
            error=record.get("error") or None,
        )
        for record in records
    )


def _seconds(run: AssistantRun) -> dict[str, float | None]:
    """How long the run took, and of that how long it waited for a worker (None: not
    known yet; a run answered in the request has no worker start)."""
    started, finished = run.started_at, run.finished_at
    return {
        "took": (finished - run.created_at).total_seconds() if finished else None,
        "waited": (started - run.created_at).total_seconds() if started else None,
    }


@login_required
@require_GET
def assistant_run(request: HttpRequest, run_id: int) -> HttpResponse:
    """One run: what was asked and answered, each tool call, the model, the key that
    paid, tokens, cost and timings (the ledger's usage charges link here)."""
    user = user_of(request)
    try:
        run = run_detail_for(user=user, run_id=run_id)
    except NotFound:
        raise Http404("No assistant run with this id.") from None
    label, tone, explanation = RUN_STATUS.get(run.status, (run.status, "", ""))
    turns = [
        Turn("user", text=run.prompt),
        Turn("assistant", html=answer_html(run.response), steps=_run_steps(run.tool_calls)),
    ]
    context = {
        "run": run,
        "turns": turns,
        "mode": MODES.get(run.mode, (run.mode,))[0],
        "status": {"label": label, "tone": tone, "explanation": explanation},
        "seconds": _seconds(run),
        "paid_with": run_paid_with(user=user, run=run),
    }
    return render(request, "assistant/run.html", context)
