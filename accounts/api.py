"""The accounts API: the caller's profile (``/api/me``), CLI session refresh and logout
(seed 003), personal API tokens (seed 000) and device login (RFC 8628)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import devices, tokens
from accounts.selectors import api_token_get_for_user, api_tokens_for, cli_session_for
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenListSerializer,
    ApiTokenOutputSerializer,
    DeviceAuthorizationSerializer,
    MeOutputSerializer,
    MessageSerializer,
    TokenPairSerializer,
)
from accounts.services import RequestOrigin, user_update_profile
from core.clientip import client_ip
from core.errors import PermissionDenied
from core.throttling import DEFAULT_THROTTLES, IpThrottle

NO_STORE = {"Cache-Control": "no-store"}


class RefreshThrottle(IpThrottle):
    scope = "auth_refresh"
    rate = "30/min"


class DeviceStartThrottle(IpThrottle):
    scope = "device_start"
    rate = "10/min"


class DevicePollThrottle(IpThrottle):
    """A hard ceiling above RFC 8628's ``slow_down`` handling, against runaway clients."""

    scope = "device_poll"
    rate = "60/min"


class AuthRefreshApi(APIView):
    """``POST /auth/refresh``: rotate the refresh token; reuse ends the whole sign-in.

    The session token is usually expired when this is called, so no Bearer is required:
    the refresh token is the credential.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [RefreshThrottle, *DEFAULT_THROTTLES]

    class InputSerializer(serializers.Serializer):
        refresh_token = serializers.CharField(max_length=200)

        class Meta:
            ref_name = "AuthRefreshInput"

    @extend_schema(request=InputSerializer, responses=TokenPairSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = tokens.cli_session_refresh(
            refresh_token=data.validated_data["refresh_token"], origin=RequestOrigin.of(request)
        )
        body = {
            "token": pair.token,
            "refresh_token": pair.refresh_token,
            "message": "Token refreshed successfully",
        }
        return Response(TokenPairSerializer(body).data, headers=NO_STORE)


class AuthLogoutApi(APIView):
    """``POST /auth/logout``: end this sign-in (the CLI session's whole token family)."""

    @extend_schema(request=None, responses=MessageSerializer)
    def post(self, request: Request) -> Response:
        auth = request.auth if isinstance(request.auth, dict) else {}
        if auth.get("kind") == "cli_session":
            session = cli_session_for(user=request.user, public_id=str(auth.get("sid", "")))
            if session is not None:
                tokens.cli_session_revoke(
                    session=session,
                    reason="logout",
                    actor=request.user,  # type: ignore[arg-type]
                    origin=RequestOrigin.of(request),
                )
        elif auth.get("kind") == "api":
            found = api_token_get_for_user(user=request.user, token_id=auth["api_token_id"])
            tokens.api_token_revoke(
                token=found,
                actor=request.user,  # type: ignore[arg-type]
                origin=RequestOrigin.of(request),
            )
        else:
            logout(request._request)
        return Response({"message": "Logged out successfully"})


class ApiTokenCreateApi(APIView):
    """``POST /api/token``: a personal API token (a JWT shown once)."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, allow_blank=True)

        class Meta:
            ref_name = "ApiTokenCreateInput"

    @extend_schema(
        request=InputSerializer,
        responses={201: ApiTokenCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, dict) and request.auth.get("kind") == "api":
            # A leaked token must not be able to mint itself successors.
            raise PermissionDenied(
                "API tokens cannot create API tokens. Sign in with the CLI or the browser."
            )
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        minted_by = None
        if isinstance(request.auth, dict) and request.auth.get("kind") == "cli_session":
            minted_by = cli_session_for(user=request.user, public_id=str(request.auth.get("sid")))
        row, jwt = tokens.api_token_create(
            user=request.user,  # type: ignore[arg-type]
            name=data.validated_data.get("name") or "API token",
            cli_session=minted_by,
            origin=RequestOrigin.of(request),
        )
        body = {"token": jwt, "api_token": ApiTokenOutputSerializer(row).data}
        return Response(body, status=201, headers=NO_STORE)


class ApiTokenListApi(APIView):
    """``GET /api/tokens``: the caller's usable tokens (never the tokens themselves)."""

    @extend_schema(responses=ApiTokenListSerializer)
    def get(self, request: Request) -> Response:
        rows = api_tokens_for(user=request.user)
        return Response({"tokens": ApiTokenOutputSerializer(rows, many=True).data})


class ApiTokenRevokeApi(APIView):
    """``DELETE /api/tokens/<id>``: revoke one of the caller's tokens."""

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        found = api_token_get_for_user(user=request.user, token_id=token_id)
        tokens.api_token_revoke(
            token=found,
            actor=request.user,  # type: ignore[arg-type]
            origin=RequestOrigin.of(request),
        )
        return Response(status=204)


class DeviceAuthorizationApi(APIView):
    """``POST /api/auth/device``: start a device login (RFC 8628 §3.2)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [DeviceStartThrottle, *DEFAULT_THROTTLES]

    class InputSerializer(serializers.Serializer):
        client_name = serializers.CharField(max_length=100, required=False, allow_blank=True)

        class Meta:
            ref_name = "DeviceAuthorizationInput"

    @extend_schema(
        request=InputSerializer,
        responses=DeviceAuthorizationSerializer,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)
        row, device_code, user_code = devices.device_authorization_start(
            client_name=data.validated_data.get("client_name", ""),
            client_ip=client_ip(request),
        )
        uri = f"{settings.APP_URL}{reverse('accounts:device')}"
        body = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?user_code={user_code}",
            "interval": row.interval,
            "expires_in": settings.DEVICE_CODE_EXPIRES_IN,
        }
        return Response(body, headers=NO_STORE)


class DeviceTokenApi(APIView):
    """``POST /api/auth/device/token``: poll; the token pair once approved."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [DevicePollThrottle]

    class InputSerializer(serializers.Serializer):
        device_code = serializers.CharField(max_length=200)

        class Meta:
            ref_name = "DeviceTokenInput"

    @extend_schema(request=InputSerializer, responses=TokenPairSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = devices.device_token_poll(device_code=data.validated_data["device_code"])
        body = {
            "token": pair.token,
            "refresh_token": pair.refresh_token,
            "message": "Device login approved",
        }
        return Response(TokenPairSerializer(body).data, headers=NO_STORE)


class MeApi(APIView):
    """``GET /api/me`` and ``PATCH /api/me``: read or rename the signed-in user."""

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=150, allow_blank=True)

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeOutputSerializer(request.user).data)

    @extend_schema(request=InputSerializer, responses=MeOutputSerializer)
    def patch(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_update_profile(user=request.user, name=serializer.validated_data["name"])  # type: ignore[arg-type]
        return Response(MeOutputSerializer(user).data)
