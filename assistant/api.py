"""The assistant's API (seed 003): ``GET /mcp/status``, ``POST /ask``, ``POST /ask/confirm``,
``GET /ask/runs/<id>`` (and its events), and the user's conversations under
``/api/assistant/sessions``.

Runs execute in Celery workers. ``/ask``, ``/ask/confirm`` and the events stream are served
by async views (:mod:`assistant.async_views`) that run the APIViews here in a thread, then
await the run without holding one."""

import json
import logging
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
from assistant.events import (
    STREAMS_PER_USER,
    stream_slot_take,
)
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
    RunStart,
    run_ask_start,
    run_confirm_start,
    run_get_for_user,
    run_outcome,
)
from assistant.services.sessions import session_delete, session_rename
from core.throttling import DEFAULT_THROTTLES, BatchedThrottlesMixin, UserThrottle

logger = logging.getLogger(__name__)


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
    "402 `no_llm_key`: no key of your own and the server has no shared key (add your own "
    "OpenAI or OpenRouter key); 402 `insufficient_credits`: no key of your own and no "
    "credits (add credits or your own key). 409 `jira_not_connected` / "
    "`connection_needs_reauth`: connect or reconnect Jira. "
    "502/503: the model provider or the MCP server failed (`llm_key_refused`, "
    "`provider_unavailable`, `mcp_unavailable`). 422 `tool_round_limit`: the model kept "
    "calling tools past the limit; 504 `run_too_long`: still going after "
    "`CELERY_TASK_SOFT_TIME_LIMIT`. A failing tool is not an error: the model is told and "
    "explains. The run executes in a worker: past `ASK_SYNC_TIMEOUT` seconds (default 120) "
    "the answer is 202 `{status: running, run_id}`; poll `GET /ask/runs/<run_id>`."
)


class RunningOutputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["running"])
    run_id = serializers.IntegerField()
    message = serializers.CharField()
    confirmation_token = serializers.CharField(
        required=False,
        help_text=(
            "Confirm mode: keep it. If the run stops for your approval, this is the token "
            "for /ask/confirm; it is shown only here (GET /ask/runs/<id> never shows it)."
        ),
    )


def running_body(run_id: int, confirmation_token: str = "") -> dict[str, Any]:
    body = {
        "status": "running",
        "run_id": run_id,
        "message": f"Still working on it: GET /ask/runs/{run_id} tells when it is done.",
    }
    if confirmation_token:
        body["confirmation_token"] = confirmation_token
    return body


def _queued(start: RunStart, *, fresh: bool) -> Response:
    """The APIView's answer to its async view: stored, now queue it and wait (the token,
    if any, stays in this request: the async view answers with it). ``fresh``: a new run,
    stored with no events, so it is followed from the first (not looked up)."""
    return Response(
        {
            "run_id": start.run.pk,
            "confirmation_token": start.confirmation_token,
            "events_after": 0 if fresh else None,
        },
        status=status.HTTP_202_ACCEPTED,
    )


class AskApi(BatchedThrottlesMixin, APIView):
    """``POST /ask``: ask Kay; seed 003's body."""

    throttle_classes = [AskThrottle, *DEFAULT_THROTTLES]

    @extend_schema(
        summary="Ask the assistant",
        description=(
            "One-shot (`interactive: false`), interactive (`interactive: true`, optional "
            "`session_id` to continue; the answer carries `session_id`) or confirm "
            "(`confirm: true`: read-only tools run, and the first change waits for "
            "`POST /ask/confirm` with the returned `confirmation_token`, valid 10 minutes). "
            "Tools act with your own Atlassian access. 409 `turn_in_progress`: a turn is "
            "already running in this conversation (or waits for approval). " + ASK_ERRORS
        ),
        request=AskInputSerializer,
        responses={200: AskOutputSerializer, 202: RunningOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = AskInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        start = run_ask_start(
            user=user_of(request),
            prompt=data.validated_data["prompt"],
            interactive=data.validated_data["interactive"],
            confirm=data.validated_data["confirm"],
            session_id=data.validated_data.get("session_id"),
        )
        return _queued(start, fresh=True)


class AskConfirmApi(BatchedThrottlesMixin, APIView):
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
        start = run_confirm_start(
            user=user_of(request),
            token=data.validated_data["confirmation_token"],
            approved=data.validated_data["approved"],
        )
        return _queued(start, fresh=False)  # resumed: its first part's events come before


class AskRunApi(APIView):
    """``GET /ask/runs/<id>``: a run's status, or its result in /ask's shapes."""

    @extend_schema(
        summary="An assistant run's result",
        description=(
            "202 `{status: running, run_id}` while the worker runs it; then what /ask would "
            "have answered: the completed body, `pending_confirmation` (without "
            "`confirmation_token`: the token is shown once, to the /ask or /ask/confirm "
            "request that started the run, in its 202 body when it did not wait), or the "
            "run's error with its status. Reading a run changes nothing. Another user's run "
            "is a 404."
        ),
        responses={200: AskOutputSerializer, 202: RunningOutputSerializer},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get_for_user(user=user_of(request), run_id=run_id)
        outcome = run_outcome(run=run)
        if outcome is None:
            return Response(running_body(run.pk), status=status.HTTP_202_ACCEPTED)
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
            "`pending` (`{action, message}`: the token is the one /ask returned), then "
            "`done` (`{status}`, `error` when it failed, `body` (what /ask answers) when it "
            "completed). After a `done` whose status is "
            "`pending_confirmation` the stream stays open: once /ask/confirm resumes the run "
            "(the same run id) its events follow, up to the next `done`; if the action is "
            "not answered in time the stream ends with `done` `{status: expired}`. At most "
            f"{STREAMS_PER_USER} open streams per user (429 `rate_limited` past that). "
            "Another user's run is a 404."
        ),
        responses={200: None},
    )
    def get(self, request: Request, run_id: int) -> Response:
        user = user_of(request)
        run = run_get_for_user(user=user, run_id=run_id)
        slot = stream_slot_take(user_id=user.pk)
        return Response({"run_id": run.pk, "slot": slot.key})


class SessionPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class SessionListApi(APIView):
    """``GET /api/assistant/sessions?page=N``: your conversations, most recent first."""

    @extend_schema(
        summary="Your assistant conversations",
        description=(
            "Interactive conversations, most recently used first (without messages). "
            "Paginated (`page`, `page_size` up to 200, 50 by default): "
            "`{count, next, previous, results}`."
        ),
        parameters=[
            OpenApiParameter("page", int, description="Page number, from 1."),
            OpenApiParameter("page_size", int, description="Conversations per page (≤ 200)."),
        ],
        responses=SessionOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        paginator = SessionPagination()
        page = paginator.paginate_queryset(sessions_for(user=user_of(request)), request, view=self)
        return paginator.get_paginated_response(SessionOutputSerializer(page, many=True).data)


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
