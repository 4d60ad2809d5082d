"""The assistant's API (seed 003): ``GET /mcp/status``, ``POST /ask``, ``POST /ask/confirm``,
and the user's conversations under ``/api/assistant/sessions``."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
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
from assistant.services.ask import ask_confirm, ask_run
from assistant.services.executor import McpToolExecutor
from assistant.services.mcp import assistant_mcp_status
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
    "explains."
)


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
        responses={200: AskOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = AskInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_of(request)
        outcome = ask_run(
            user=user,
            prompt=data.validated_data["prompt"],
            interactive=data.validated_data["interactive"],
            confirm=data.validated_data["confirm"],
            session_id=data.validated_data.get("session_id"),
            executor=McpToolExecutor(user),
        )
        return Response(ask_body(outcome))


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
        responses={200: AskOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        data = ConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_of(request)
        outcome = ask_confirm(
            user=user,
            token=data.validated_data["confirmation_token"],
            approved=data.validated_data["approved"],
            executor=McpToolExecutor(user),
        )
        return Response(ask_body(outcome))


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
