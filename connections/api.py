"""The Kay CLI's connection endpoints (seed 003): bodies exactly as the seed shows them."""

from __future__ import annotations

import logging

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import atlassian_profile_for
from accounts.services import RequestOrigin
from connections import selectors, services
from connections.registry import service_get
from core.errors import ApplicationError
from core.throttling import DEFAULT_THROTTLES, IpThrottle

logger = logging.getLogger(__name__)

SERVICE_PARAM = OpenApiParameter("service", str, OpenApiParameter.QUERY, required=True)


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

    class InputSerializer(serializers.Serializer):
        session_id = serializers.CharField(
            required=False, allow_blank=True, allow_null=True, max_length=200
        )

        class Meta:
            ref_name = "ConnectionConnectInput"

    class OutputSerializer(serializers.Serializer):
        service = serializers.CharField()
        session_id = serializers.CharField()
        authorization_url = serializers.URLField()
        state = serializers.CharField()
        user_code = serializers.CharField(
            help_text="Print it: the browser shows it again before the CLI is signed in."
        )
        message = serializers.CharField()

        class Meta:
            ref_name = "ConnectionConnect"

    @extend_schema(parameters=[SERVICE_PARAM], request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        service = _service(request)
        data = self.InputSerializer(data=request.data or {})
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
        return Response(self.OutputSerializer(body).data)


class ConnectionListApi(APIView):
    """``GET /connections?session_id=``: which registered services are connected."""

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("session_id", str, OpenApiParameter.QUERY, required=True)],
        responses=inline_serializer("ConnectionList", {"connections": serializers.DictField()}),
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
        return Response({"connections": selectors.connections_for_session(session=session)})


class ConnectionDisconnectApi(APIView):
    """``POST /connections/disconnect?service=`` with ``{"session_id"}``."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        session_id = serializers.CharField(max_length=200)

        class Meta:
            ref_name = "ConnectionDisconnectInput"

    @extend_schema(
        parameters=[SERVICE_PARAM],
        request=InputSerializer,
        responses=inline_serializer(
            "ConnectionDisconnect",
            {
                "service": serializers.CharField(),
                "connected": serializers.BooleanField(),
                "message": serializers.CharField(),
            },
        ),
    )
    def post(self, request: Request) -> Response:
        service = _service(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.kay_session_find(
            session_id=data.validated_data["session_id"], user=request.user
        )
        if session.user is not None:
            services.connection_disconnect(
                user=session.user, service=service, request_origin=RequestOrigin.of(request)
            )
        return Response(
            {
                "service": service,
                "connected": False,
                "message": f"Successfully disconnected from {service}",
            }
        )


class AuthStatusApi(APIView):
    """``GET /auth/status/<state>``: pending, then the CLI's tokens, handed out once."""

    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer(
            "AuthStatus",
            {
                "status": serializers.CharField(),
                "account_id": serializers.CharField(required=False),
                "token": serializers.CharField(required=False),
                "refresh_token": serializers.CharField(required=False),
                "message": serializers.CharField(),
            },
        )
    )
    def get(self, request: Request, state: str) -> Response:
        body = services.auth_status_collect(state=state, user=request.user)
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
        responses=inline_serializer(
            "AuthMe", {"message": serializers.CharField(), "data": serializers.DictField()}
        )
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
        return Response({"message": "User information", "data": data})
