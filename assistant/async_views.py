"""The async views ``/ask``, ``/ask/confirm`` and ``/ask/runs/<id>/events`` are served by:
each runs its DRF APIView (``assistant.api``: authentication, throttles, validation,
refusals, the run stored) in a thread, then queues the run and awaits it — or streams its
events — without holding a thread or a database connection, so waiting requests never
stall the synchronous rest of the API."""

import asyncio
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from assistant.api import AskApi, AskConfirmApi, AskRunEventsApi, running_body
from assistant.events import (
    DONE,
    SlotStreamingResponse,
    StreamSlot,
    run_events_follow,
    run_events_last_seq,
    stream_with_slot,
)
from assistant.models import AssistantRun
from assistant.serializers import ask_body
from assistant.services.runs import RunWait, run_enqueue, run_outcome, run_stream_wait
from core.errors import ApplicationError

logger = logging.getLogger(__name__)


def _connections_release() -> None:
    """This thread's database connections closed (back to the pool, with
    ``DATABASE_POOL_SIZE``): a wait that follows must not hold one, or a few open streams
    would take a process's whole pool and stall every other request. One left inside a
    transaction, as in tests, is not this request's to close."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _api(view: type[APIView], request: HttpRequest, **kwargs: Any) -> Response:
    response = view.as_view()(request, **kwargs)
    response.render()
    _connections_release()  # the wait that follows holds no connection either
    return response


def _stream_wait(run_id: int) -> RunWait:
    """Where the run stands, read without keeping a connection for the wait it sets."""
    try:
        return run_stream_wait(run_id=run_id)
    finally:
        _connections_release()


# Work a request started and must finish though its client went away meanwhile.
_ORPHANS: set[asyncio.Future[Any]] = set()
_T = TypeVar("_T")


async def _uncancelled(
    work: Awaitable[_T], *, abandoned: Callable[[_T], Awaitable[None]] | None = None
) -> _T:
    """``work`` carried to its end even when the client disconnects while it runs (Django
    then cancels the view): the thread doing it would finish anyway and its result be
    lost, a run stored but never queued, a stream slot taken but never given back.
    ``abandoned`` receives the result nobody awaits any more."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:

        async def finish() -> None:
            try:
                result = await future
                if abandoned is not None:
                    await abandoned(result)
            except Exception:
                logger.exception("assistant request abandoned by its client failed")

        # Outside the request's context: its thread (core.asgi_handler) is given back once
        # the request ends, and sync code the orphan calls then (``abandoned``) would find
        # that context closed. The work already running keeps its thread until it is done.
        orphan = asyncio.get_running_loop().create_task(finish(), context=contextvars.Context())
        _ORPHANS.add(orphan)
        orphan.add_done_callback(_ORPHANS.discard)
        raise


def _start(view: type[APIView], request: HttpRequest) -> tuple[HttpResponse, int]:
    """The run stored (or refused) and queued, in one piece: a client gone meanwhile
    must not leave a run (or an approval) stored but never queued. The events sequence
    from before the run was queued, to follow it from."""
    response = _api(view, request)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return response, 0
    run_id = int(response.data["run_id"])
    after = response.data["events_after"]
    if after is None:
        after = run_events_last_seq(run_id=run_id)
    try:
        run_enqueue(run_id=run_id)
    except ApplicationError as exc:  # the queue is down: the run was put back or failed
        return JsonResponse(exc.as_dict(), status=exc.status), after
    return response, after


def _result(run_id: int, confirmation_token: str) -> HttpResponse:
    run = AssistantRun.objects.get(pk=run_id)
    outcome = run_outcome(run=run, confirmation_token=confirmation_token)
    if outcome is None:
        return JsonResponse(running_body(run_id, confirmation_token), status=202)
    if isinstance(outcome, Exception):
        return JsonResponse(outcome.as_dict(), status=outcome.status)
    return JsonResponse(ask_body(outcome))


async def _start_and_wait(view: type[APIView], request: HttpRequest) -> HttpResponse:
    """The APIView stores the run (or refuses); then queue it and await its ``done``
    event for up to ``ASK_SYNC_TIMEOUT`` seconds, holding no thread meanwhile."""
    response, after = await _uncancelled(sync_to_async(_start)(view, request))
    if response.status_code != status.HTTP_202_ACCEPTED:
        return response
    run_id = int(response.data["run_id"])  # type: ignore[attr-defined]
    token = str(response.data["confirmation_token"])  # type: ignore[attr-defined]
    done: dict[str, Any] = {}
    try:
        async with asyncio.timeout(float(settings.ASK_SYNC_TIMEOUT)):
            async for event in run_events_follow(run_id=run_id, after=after):
                if event["kind"] == DONE:
                    done = event["data"]
    except TimeoutError:
        return JsonResponse(running_body(run_id, token), status=202)
    if "error" in done:
        # Also a confirmation put back for a retry, whose run is pending again.
        return JsonResponse({"error": done["error"]}, status=int(done["httpStatus"]))
    if "body" in done:  # completed: the worker sent the answer (no thread, no query)
        return JsonResponse(done["body"])
    return await sync_to_async(_result)(run_id, token)


@csrf_exempt  # DRF's SessionAuthentication checks CSRF inside the APIView
async def ask(request: HttpRequest) -> HttpResponse:
    return await _start_and_wait(AskApi, request)


@csrf_exempt
async def ask_confirm(request: HttpRequest) -> HttpResponse:
    return await _start_and_wait(AskConfirmApi, request)


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event["data"])
    return f"id: {event['seq']}\nevent: {event['kind']}\ndata: {data}\n\n".encode()


async def _follow(run_id: int, after: int, limit: float) -> AsyncIterator[dict[str, Any]]:
    """The run's events after ``after`` up to its next ``done``, for ``limit`` seconds."""
    with suppress(TimeoutError):
        async with asyncio.timeout(limit):
            async for event in run_events_follow(run_id=run_id, after=after):
                yield event


async def _stream(run_id: int, after: int) -> AsyncIterator[bytes]:
    """The run's events until it ends. A ``done`` after which the run waits for approval
    (or was put back for a retry) does not end it: /ask/confirm resumes the same run, and
    its events follow. Each wait is bounded: the task's time limit while the run runs,
    the confirmation's expiry while it waits, a moment for a finished run's tail."""
    state = await sync_to_async(_stream_wait)(run_id)
    while True:
        done: dict[str, Any] | None = None
        async for event in _follow(run_id, after, state.seconds or 2.0):
            after = event["seq"]
            yield _sse(event)
            if event["kind"] == DONE:
                done = event["data"]
        waited, state = state, await sync_to_async(_stream_wait)(run_id)
        if done is not None:
            if done.get("status") == "pending_confirmation" or not state.ended:
                continue
            return
        if waited.pending and state.running:
            continue  # approved just as the wait ran out
        if state.pending:
            yield _sse({"seq": after, "kind": DONE, "data": {"status": "expired"}})
        elif waited.ended:
            # A finished run whose events are gone (purged) or were all read.
            yield _sse({"seq": after, "kind": DONE, "data": {"status": "finished"}})
        return


@sync_to_async  # the cache may be the database
def _slot_release(response: HttpResponseBase) -> None:
    """The stream slot a request took, given back: its client left before the stream.
    This runs on a thread no ``request_finished`` closes: its connections are given back
    here (the count may live in the database)."""
    try:
        if isinstance(response, SlotStreamingResponse):
            response.slot.release()
        elif isinstance(response, Response) and response.status_code == status.HTTP_200_OK:
            StreamSlot(str(response.data["slot"])).release()
    finally:
        _connections_release()


async def slot_taking_view(
    view: Callable[[HttpRequest], HttpResponseBase], request: HttpRequest
) -> HttpResponseBase:
    """``view`` (sync, it may take a stream slot) run to its end though the client leaves
    meanwhile (Django then cancels the request): the slot of a response nobody will send
    or close is given back, not held until the count lapses."""
    return await _uncancelled(sync_to_async(view)(request), abandoned=_slot_release)


@csrf_exempt
async def ask_run_events(request: HttpRequest, run_id: int) -> HttpResponseBase:
    response = await _uncancelled(
        sync_to_async(_api)(AskRunEventsApi, request, run_id=run_id),
        abandoned=_slot_release,
    )
    if response.status_code != status.HTTP_200_OK:
        # JSON whatever the Accept header (EventSource asks for text/event-stream).
        refusal = JsonResponse(response.data, status=response.status_code)
        if "Retry-After" in response:
            refusal["Retry-After"] = response["Retry-After"]
        return refusal
    slot = StreamSlot(str(response.data["slot"]))
    after = request.headers.get("Last-Event-ID", "")
    # ASCII digits that fit a bigint: "²" or 5,000 digits made int() raise (a 500).
    resume = int(after) if after.isascii() and after.isdigit() and len(after) <= 18 else 0
    sse = SlotStreamingResponse(
        stream_with_slot(_stream(run_id, resume), slot),
        slot=slot,
        content_type="text/event-stream",
    )
    sse["Cache-Control"] = "no-cache"
    sse["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return sse


# drf-spectacular documents a URL, and tests walk it, through its APIView (as as_view() marks).
_documented: list[tuple[Any, type[APIView]]] = [
    (ask, AskApi),
    (ask_confirm, AskConfirmApi),
    (ask_run_events, AskRunEventsApi),
]
for _view, _api_class in _documented:
    _view.cls = _view.view_class = _api_class
    _view.initkwargs = _view.view_initkwargs = {}
