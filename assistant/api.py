"""The assistant's API (seed 003): ``GET /mcp/status``, ``POST /ask``, ``POST /ask/confirm``,
``GET /ask/runs/<id>`` (and its events), and the user's conversations under
``/api/assistant/sessions``.

Runs execute in Celery workers. ``/ask``, ``/ask/confirm`` and the events stream are
async views: each runs its DRF APIView (authentication, throttles, validation, refusals,
the run stored) in a thread, then queues the run and awaits it without holding a thread,
so waiting requests never stall the synchronous rest of the API."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
from assistant.events import DONE, run_events_follow, run_events_last_seq
from assistant.models import AssistantRun
from assistant.selectors import session_get_for_user, sessions_for
from assistant.serializers import (
    AskInputSerializer,
    AskOutputSerializer,
    ConfirmInputSerializer,
    McpStatusOutputSerializer,
    SessionDetailOutputSerializer,
    SessionOutputSerializer,
    SessionRenameInputSerializer,
    ask_body,
)
from assistant.services.mcp import assistant_mcp_status
from assistant.services.runs import (
    run_ask_start,
    run_confirm_start,
    run_enqueue,
    run_get_for_user,
    run_outcome,
)
from assistant.services.sessions import session_delete, session_rename
from core.throttling import DEFAULT_THROTTLES, UserThrottle


class McpStatusApi(APIView):
    """``GET /mcp/status``: whether the Jira tools answer for you, and which you may use."""

    @extend_schema(
        summary="Jira tools (MCP) status",
        description=(
            "Whether the MCP server for Jira and Confluence is enabled and answers with your "
            "Atlassian access, and the tools you may use (disabled ones left out). An "
            "unreachable server is reported as `connected: false`. 409 "
            "`jira_not_connected` when Jira is not connected (`kay connect jira`), 409 "
            "`connection_needs_reauth` when its token cannot be refreshed."
        ),
        responses={200: McpStatusOutputSerializer, 409: None},
    )
    def get(self, request: Request) -> Response:
        body = assistant_mcp_status(user=request.user)  # type: ignore[arg-type]
        return Response(McpStatusOutputSerializer(body).data)


# --- /ask, /ask/confirm and conversations ----------------------------------------------


class AskThrottle(UserThrottle):
    """Each /ask costs model calls (and maybe credits): a tighter limit per user."""

    scope = "assistant_ask"
    rate = "30/min"


ASK_ERRORS = (
    "402 `no_llm_key`: no key of your own and no credits (add credits or your own OpenAI "
    "key). 409 `jira_not_connected` / `connection_needs_reauth`: connect or reconnect Jira. "
    "502/503: the model provider or the MCP server failed (`llm_key_refused`, "
    "`provider_unavailable`, `mcp_unavailable`). 422 `tool_round_limit`: the model kept "
    "calling tools past the limit. A failing tool is not an error: the model is told and "
    "explains. The run executes in a worker: past `ASK_SYNC_TIMEOUT` seconds (default 120) "
    "the answer is 202 `{status: running, run_id}`; poll `GET /ask/runs/<run_id>`."
)


class RunningOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["running"])
    run_id = serializers.IntegerField()
    message = serializers.CharField()


def _running(run_id: int) -> dict[str, Any]:
    return {
        "status": "running",
        "run_id": run_id,
        "message": f"Still working on it: GET /ask/runs/{run_id} tells when it is done.",
    }


def _queued(run: AssistantRun) -> Response:
    """The APIView's answer to its async view: stored, now queue it and wait."""
    return Response({"run_id": run.pk}, status=status.HTTP_202_ACCEPTED)


class AskApi(APIView):
    """``POST /ask``: ask Kay; seed 003's body."""

    throttle_classes = [AskThrottle, *DEFAULT_THROTTLES]

    @extend_schema(
        summary="Ask the assistant",
        description=(
            "One-shot (`interactive: false`), interactive (`interactive: true`, optional "
            "`session_id` to continue; the answer carries `session_id`) or confirm "
            "(`confirm: true`: read-only tools run, and the first change waits for "
            "`POST /ask/confirm` with the returned `confirmation_token`, valid 10 minutes). "
            "Tools act with your own Atlassian access. " + ASK_ERRORS
        ),
        request=AskInputSerializer,
        responses={200: AskOutputSerializer, 202: RunningOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = AskInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_ask_start(
            user=user_of(request),
            prompt=data.validated_data["prompt"],
            interactive=data.validated_data["interactive"],
            confirm=data.validated_data["confirm"],
            session_id=data.validated_data.get("session_id"),
        )
        return _queued(run)


class AskConfirmApi(APIView):
    """``POST /ask/confirm``: approve or cancel the action a confirm-mode /ask is holding."""

    throttle_classes = [AskThrottle, *DEFAULT_THROTTLES]

    @extend_schema(
        summary="Approve or cancel a pending action",
        description=(
            "`approved: true` runs exactly the action /ask returned, then the assistant "
            "finishes; `approved: false` runs nothing and the assistant is told. A token "
            "works once (409 `confirmation_used`), for 10 minutes (410 "
            "`confirmation_expired`), and only for you (404 `confirmation_not_found`). "
            + ASK_ERRORS
        ),
        request=ConfirmInputSerializer,
        responses={200: AskOutputSerializer, 202: RunningOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = ConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_confirm_start(
            user=user_of(request),
            token=data.validated_data["confirmation_token"],
            approved=data.validated_data["approved"],
        )
        return _queued(run)


class AskRunApi(APIView):
    """``GET /ask/runs/<id>``: a run's status, or its result in /ask's shapes."""

    @extend_schema(
        summary="An assistant run's result",
        description=(
            "202 `{status: running, run_id}` while the worker runs it; then what /ask would "
            "have answered: the completed body, `pending_confirmation` with a fresh "
            "`confirmation_token` (each read issues a new one; only the newest works), or "
            "the run's error with its status. Another user's run is a 404."
        ),
        responses={200: AskOutputSerializer, 202: RunningOutputSerializer},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=user_of(request), run_id=run_id)
        outcome = run_outcome(run=run)
        if outcome is None:
            return Response(_running(run.pk), status=status.HTTP_202_ACCEPTED)
        if isinstance(outcome, Exception):
            raise outcome
        return Response(ask_body(outcome))


class EventStreamRenderer(BaseRenderer):
    """Lets ``Accept: text/event-stream`` (what EventSource sends) through negotiation;
    the stream itself is written by :func:`ask_run_events`."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):  # type: ignore[no-untyped-def]
        return json.dumps(data).encode()


class AskRunEventsApi(APIView):
    """``GET /ask/runs/<id>/events``: the run's progress as Server-Sent Events."""

    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        summary="An assistant run's progress (Server-Sent Events)",
        description=(
            "`text/event-stream` of the run's events, each with `id` (its sequence number; "
            "`Last-Event-ID` resumes after it), `event` and JSON `data`: `text` "
            "(`{delta}`, the answer as the model writes it), `tool_start` "
            "(`{name, arguments}`), `tool_end` (`{name, result, durationMs, error}`), "
            "`pending` (`{action, message}`: read the run for its confirmation token), "
            "then `done` (`{status}`, and `error` when it failed). Another user's run is "
            "a 404."
        ),
        responses={200: None},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=user_of(request), run_id=run_id)
        final = run.status not in (AssistantRun.Status.QUEUED, AssistantRun.Status.RUNNING)
        return Response({"run_id": run.pk, "status": run.status, "final": final})


# --- The async views the URLs serve ------------------------------------------------------


def _api(view: type[APIView], request: HttpRequest, **kwargs: Any) -> Response:
    response = view.as_view()(request, **kwargs)
    response.render()
    # The wait that follows holds no database connection either (one left inside a
    # transaction, as in tests, is not this request's to close).
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()
    return response


def _result(run_id: int) -> HttpResponse:
    run = AssistantRun.objects.get(pk=run_id)
    outcome = run_outcome(run=run)
    if outcome is None:
        return JsonResponse(_running(run_id), status=202)
    if isinstance(outcome, Exception):
        return JsonResponse(outcome.as_dict(), status=outcome.status)
    return JsonResponse(ask_body(outcome))


async def _start_and_wait(view: type[APIView], request: HttpRequest) -> HttpResponse:
    """The APIView stores the run (or refuses); then queue it and await its ``done``
    event for up to ``ASK_SYNC_TIMEOUT`` seconds, holding no thread meanwhile."""
    response = await sync_to_async(_api)(view, request)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return response
    run_id = int(response.data["run_id"])
    after = await sync_to_async(run_events_last_seq)(run_id=run_id)
    await sync_to_async(run_enqueue)(run_id=run_id)
    done: dict[str, Any] = {}
    try:
        async with asyncio.timeout(float(settings.ASK_SYNC_TIMEOUT)):
            async for event in run_events_follow(run_id=run_id, after=after):
                if event["kind"] == DONE:
                    done = event["data"]
    except TimeoutError:
        return JsonResponse(_running(run_id), status=202)
    if "error" in done:
        # Also a confirmation put back for a retry, whose run is pending again.
        return JsonResponse({"error": done["error"]}, status=int(done["httpStatus"]))
    return await sync_to_async(_result)(run_id)


@csrf_exempt  # DRF's SessionAuthentication checks CSRF inside the APIView
async def ask(request: HttpRequest) -> HttpResponse:
    return await _start_and_wait(AskApi, request)


@csrf_exempt
async def ask_confirm(request: HttpRequest) -> HttpResponse:
    return await _start_and_wait(AskConfirmApi, request)


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event["data"])
    return f"id: {event['seq']}\nevent: {event['kind']}\ndata: {data}\n\n".encode()


async def _stream(run_id: int, after: int, final: bool) -> AsyncIterator[bytes]:
    # A finished run's tail is read for a moment only (its events may be purged).
    limit = 2.0 if final else float(settings.CELERY_TASK_TIME_LIMIT)
    try:
        async with asyncio.timeout(limit):
            async for event in run_events_follow(run_id=run_id, after=after):
                yield _sse(event)
    except TimeoutError:
        if final:
            yield _sse({"seq": after, "kind": DONE, "data": {"status": "finished"}})


@csrf_exempt
async def ask_run_events(request: HttpRequest, run_id: int) -> HttpResponseBase:
    response = await sync_to_async(_api)(AskRunEventsApi, request, run_id=run_id)
    if response.status_code != status.HTTP_200_OK:
        return response
    after = request.headers.get("Last-Event-ID", "")
    # ASCII digits that fit a bigint: "²" or 5,000 digits made int() raise (a 500).
    resume = int(after) if after.isascii() and after.isdigit() and len(after) <= 18 else 0
    stream = _stream(run_id, resume, response.data["final"])
    sse = StreamingHttpResponse(stream, content_type="text/event-stream")
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


class SessionListApi(APIView):
    """``GET /api/assistant/sessions``: your conversations, most recent first."""

    @extend_schema(
        summary="Your assistant conversations",
        description="Interactive conversations, most recently used first (without messages).",
        responses=SessionOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        sessions = sessions_for(user=user_of(request))
        return Response(SessionOutputSerializer(sessions, many=True).data)


class SessionDetailApi(APIView):
    """``GET``/``PATCH``/``DELETE /api/assistant/sessions/<id>``."""

    @extend_schema(
        summary="One conversation",
        description="The conversation with its messages. Another user's is a 404.",
        responses=SessionDetailOutputSerializer,
    )
    def get(self, request: Request, session_id: int) -> Response:
        session = session_get_for_user(user=user_of(request), session_id=session_id)
        return Response(SessionDetailOutputSerializer(session).data)

    @extend_schema(
        summary="Rename a conversation",
        description="Sets its title (1 to 200 characters). Another user's is a 404.",
        request=SessionRenameInputSerializer,
        responses=SessionOutputSerializer,
    )
    def patch(self, request: Request, session_id: int) -> Response:
        session = session_get_for_user(user=user_of(request), session_id=session_id)
        data = SessionRenameInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = session_rename(session=session, title=data.validated_data["title"])
        return Response(SessionOutputSerializer(session).data)

    @extend_schema(
        summary="Delete a conversation",
        description="Gone for good; the runs it held stay for billing. Another user's is a 404.",
        responses={204: None},
    )
    def delete(self, request: Request, session_id: int) -> Response:
        session_delete(session=session_get_for_user(user=user_of(request), session_id=session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
