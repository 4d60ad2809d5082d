"""The Kay CLI's connection endpoints (seed 003): bodies exactly as the seed shows them."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import atlassian_profile_for
from accounts.services import RequestOrigin
from connections import selectors, services
from connections.registry import SERVICES, service_get
from connections.serializers import (
    AuthMeOutputSerializer,
    AuthStatusOutputSerializer,
    ConnectionConnectInputSerializer,
    ConnectionConnectOutputSerializer,
    ConnectionDisconnectInputSerializer,
    ConnectionDisconnectOutputSerializer,
    ConnectionListOutputSerializer,
)
from core.errors import ApplicationError
from core.throttling import DEFAULT_THROTTLES, IpThrottle

logger = logging.getLogger(__name__)

SERVICE_PARAM = OpenApiParameter(
    "service", str, OpenApiParameter.QUERY, required=True, enum=list(SERVICES)
)
SESSION_PARAM = OpenApiParameter(
    "session_id", str, OpenApiParameter.QUERY, required=True, description="The CLI's kay session."
)


class ConnectThrottle(IpThrottle):
    """``POST /connections/connect``: each call creates a session and a state."""

    scope = "connections_connect"
    rate = "20/min"


def _service(request: Request) -> str:
    return service_get(request.query_params.get("service")).name


class ConnectionConnectApi(APIView):
    """``POST /connections/connect?service=``: start OAuth; returns the authorization URL."""

    permission_classes = [AllowAny]
    throttle_classes = [ConnectThrottle, *DEFAULT_THROTTLES]

    @extend_schema(
        summary="Connect a service",
        description=(
            "Starts OAuth for Jira, Confluence or Bitbucket. Open `authorization_url` in a "
            "browser and poll `GET /auth/status/<state>`. Without `session_id` a new kay "
            "session starts, and its first connection signs the CLI in once the browser "
            "confirms `user_code`; with one the service is added to that session."
        ),
        parameters=[SERVICE_PARAM],
        request=ConnectionConnectInputSerializer,
        responses=ConnectionConnectOutputSerializer,
    )
    def post(self, request: Request) -> Response:
        service = _service(request)
        data = ConnectionConnectInputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        started = services.connection_start(
            service=service,
            session_id=data.validated_data.get("session_id") or None,
            user=request.user if request.user.is_authenticated else None,
            request_origin=RequestOrigin.of(request),
        )
        body = {
            "service": started.service,
            "session_id": started.session_id,
            "authorization_url": started.authorization_url,
            "state": started.state,
            "user_code": started.user_code,
            "message": f"Please visit the authorization URL to connect {started.service}",
        }
        return Response(ConnectionConnectOutputSerializer(body).data)


class ConnectionListApi(APIView):
    """``GET /connections?session_id=``: which registered services are connected."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="List a session's connections",
        description="Every service Kay offers, and whether the kay session's user has it "
        "connected.",
        parameters=[SESSION_PARAM],
        responses=ConnectionListOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        session_id = request.query_params.get("session_id", "")
        if not session_id:
            raise ApplicationError(
                "session_id is required.",
                code="validation_error",
                fields={"session_id": ["This field is required."]},
            )
        session = services.kay_session_find(session_id=session_id, user=request.user)
        body = {"connections": selectors.connections_for_session(session=session)}
        return Response(ConnectionListOutputSerializer(body).data)


class ConnectionDisconnectApi(APIView):
    """``POST /connections/disconnect?service=`` with ``{"session_id"}``."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Disconnect a service",
        description="Forgets the service's tokens and sites for the kay session's user. "
        "Disconnecting a service that is not connected also succeeds.",
        parameters=[SERVICE_PARAM],
        request=ConnectionDisconnectInputSerializer,
        responses=ConnectionDisconnectOutputSerializer,
    )
    def post(self, request: Request) -> Response:
        service = _service(request)
        data = ConnectionDisconnectInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.kay_session_find(
            session_id=data.validated_data["session_id"], user=request.user
        )
        if session.user is not None:
            services.connection_disconnect(
                user=session.user, service=service, request_origin=RequestOrigin.of(request)
            )
        body = {
            "service": service,
            "connected": False,
            "message": f"Successfully disconnected from {service}",
        }
        return Response(ConnectionDisconnectOutputSerializer(body).data)


def _auth_status_body(status: services.AuthStatus) -> dict[str, str]:
    """Seed 003's answer for where the authorisation stands."""
    if not status.completed:
        return {"status": "pending", "message": "Authorization not yet completed"}
    if status.tokens is None:
        return {
            "status": "completed",
            "account_id": status.account_id,
            "message": f"Connected {status.service}. Keep using your current session token.",
        }
    return {
        "status": "completed",
        "account_id": status.account_id,
        "token": status.tokens.token,
        "refresh_token": status.tokens.refresh_token,
        "message": "Authorization completed successfully",
    }


class AuthStatusApi(APIView):
    """``GET /auth/status/<state>``: pending, then the CLI's tokens, handed out once."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Poll a connection's sign-in",
        description=(
            "`pending` until the browser finished (and confirmed) the authorisation, then "
            "`completed` with the CLI session token and refresh token: handed out once, and "
            "only for a new session's first connection. Later polls answer 410; a failed "
            "or expired authorisation answers with its error."
        ),
        responses=AuthStatusOutputSerializer,
    )
    def get(self, request: Request, state: str) -> Response:
        status = services.auth_status_collect(state=state, user=request.user)
        body = AuthStatusOutputSerializer(_auth_status_body(status)).data
        return Response(body, headers={"Cache-Control": "no-store"})

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # Django would log the path, and the path holds the state: log without it.
        response._has_been_logged = True  # type: ignore[attr-defined]
        logger.warning("GET /auth/status/<state> answered %s", response.status_code)
        return response


class AuthMeApi(APIView):
    """``GET /auth/me``: the signed-in user with their Atlassian profile and sites."""

    @extend_schema(
        summary="You, with your Atlassian profile",
        description="The signed-in user's Atlassian account id, name, email and picture "
        "(the account's own where there is no Atlassian profile), and the Atlassian sites "
        "their connections reach.",
        responses=AuthMeOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        user = request.user
        profile = atlassian_profile_for(user=user)
        data = {
            "account_id": profile.account_id if profile else None,
            "name": (profile.name if profile and profile.name else user.name)  # type: ignore[union-attr]
            or user.get_short_name(),  # type: ignore[union-attr]
            "email": user.email,  # type: ignore[union-attr]
            "picture": profile.picture if profile and profile.picture else None,
            "resources": selectors.accessible_resources_for(user=user),
        }
        return Response(AuthMeOutputSerializer({"message": "User information", "data": data}).data)
