"""The accounts API: the caller's profile (``/api/me``), CLI session refresh and logout
(seed 003), personal API tokens (seed 000) and device login (RFC 8628)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import logout
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView

from accounts import devices, tokens
from accounts.selectors import api_token_get_for_user, api_tokens_for, cli_session_for
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateInputSerializer,
    ApiTokenListSerializer,
    ApiTokenOutputSerializer,
    AuthRefreshInputSerializer,
    DeviceAuthorizationInputSerializer,
    DeviceAuthorizationSerializer,
    DeviceTokenInputSerializer,
    DeviceTokenSerializer,
    MeOutputSerializer,
    MessageSerializer,
    MeUpdateInputSerializer,
    TokenPairSerializer,
)
from accounts.services import RequestOrigin, user_update_profile
from accounts.tokens import TokenPair
from core.clientip import client_ip
from core.errors import ApplicationError, PermissionDenied
from core.parsers import JSONParser
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


def _token_pair_response(pair: TokenPair, message: str) -> Response:
    """A new CLI session token and refresh token (seed 003's shape), never cached."""
    body = {"token": pair.token, "refresh_token": pair.refresh_token, "message": message}
    return Response(TokenPairSerializer(body).data, headers=NO_STORE)


class AuthRefreshApi(APIView):
    """``POST /auth/refresh``: rotate the refresh token; reuse ends the whole sign-in.

    The session token is usually expired when this is called, so no Bearer is required:
    the refresh token is the credential.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [RefreshThrottle, *DEFAULT_THROTTLES]

    @extend_schema(
        summary="Refresh a CLI session",
        description=(
            "Trades the refresh token for a new session token (30 minutes) and a new refresh "
            "token. Each refresh token works once: sending a used one again ends the whole "
            "sign-in (401 for the holder of either copy). No Bearer needed: the refresh "
            "token is the credential."
        ),
        request=AuthRefreshInputSerializer,
        responses=TokenPairSerializer,
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = AuthRefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = tokens.cli_session_refresh(
            refresh_token=data.validated_data["refresh_token"], origin=RequestOrigin.of(request)
        )
        return _token_pair_response(pair, "Token refreshed successfully")


class AuthLogoutApi(APIView):
    """``POST /auth/logout``: end this sign-in (the CLI session's whole token family)."""

    @extend_schema(
        summary="Sign out",
        description=(
            "Ends the sign-in the request is made with: a CLI session token ends its session "
            "and every refresh token of it, a personal API token is revoked, a browser "
            "session is logged out."
        ),
        request=None,
        responses=MessageSerializer,
    )
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

    @extend_schema(
        summary="Create a personal API token",
        description=(
            "A JWT for `Authorization: Bearer`, shown only in this answer (Kay keeps a hash). "
            "Created from a browser session or a CLI session, not from another API token; "
            "one created from a CLI session expires no later than that session."
        ),
        request=ApiTokenCreateInputSerializer,
        responses={201: ApiTokenCreatedSerializer},
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, dict) and request.auth.get("kind") == "api":
            # A leaked token must not be able to mint itself successors.
            raise PermissionDenied(
                "API tokens cannot create API tokens. Sign in with the CLI or the browser."
            )
        data = ApiTokenCreateInputSerializer(data=request.data or {})
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

    @extend_schema(
        summary="List your API tokens",
        description="Your tokens that still work, newest first: names and dates, never the "
        "tokens themselves.",
        responses=ApiTokenListSerializer,
    )
    def get(self, request: Request) -> Response:
        rows = api_tokens_for(user=request.user)
        return Response({"tokens": ApiTokenOutputSerializer(rows, many=True).data})


class ApiTokenRevokeApi(APIView):
    """``DELETE /api/tokens/<id>``: revoke one of the caller's tokens."""

    @extend_schema(
        summary="Revoke an API token",
        description="The token stops working at once. Another user's token id is a 404.",
        request=None,
        responses={204: None},
    )
    def delete(self, request: Request, token_id: int) -> Response:
        found = api_token_get_for_user(user=request.user, token_id=token_id)
        tokens.api_token_revoke(
            token=found,
            actor=request.user,  # type: ignore[arg-type]
            origin=RequestOrigin.of(request),
        )
        return Response(status=204)


DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 §3.1 and §3.4: device requests are form-encoded; our own CLI sends JSON.
DEVICE_PARSERS = [JSONParser, FormParser]


# Our codes for a request that could not be read, as RFC 6749 §5.2 names them (its
# "error" must be one of a fixed list; a standard client may know no other).
OAUTH_ERROR_CODES = {"validation_error": "invalid_request", "parse_error": "invalid_request"}


class DeviceFlowApi(APIView):
    """A device login endpoint. A form-encoded (standard OAuth client) request gets RFC 6749
    §5.2's error body ``{"error": "<code>", "error_description": "..."}`` instead of ours,
    from both endpoints; JSON keeps ours."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # As DRF chose the parser (media types are case-insensitive), not by prefix.
        form = media_type_matches(FormParser.media_type, self.request.content_type)
        error = response.data.get("error") if isinstance(response.data, dict) else None
        if form and isinstance(error, dict):
            code = OAUTH_ERROR_CODES.get(str(error.get("code")), error.get("code"))
            response.data = {"error": code, "error_description": error.get("message")}
        return response


class DeviceAuthorizationApi(DeviceFlowApi):
    """``POST /api/auth/device``: start a device login (RFC 8628 §3.2)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [DeviceStartThrottle, *DEFAULT_THROTTLES]
    parser_classes = DEVICE_PARSERS

    @extend_schema(
        summary="Start a device login",
        description=(
            "RFC 8628 §3.2: a device code for the CLI to poll with, and a user code to show. "
            "The user opens `verification_uri`, signs in and approves the code."
        ),
        request=DeviceAuthorizationInputSerializer,
        responses=DeviceAuthorizationSerializer,
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = DeviceAuthorizationInputSerializer(data=request.data or {})
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


class DeviceTokenApi(DeviceFlowApi):
    """``POST /api/auth/device/token``: poll; the token pair once approved."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [DevicePollThrottle]
    parser_classes = DEVICE_PARSERS

    @extend_schema(
        summary="Poll a device login",
        description=(
            "RFC 8628 §3.4: the CLI session token and refresh token once the user approved, "
            "handed out once. Until then a 400 whose code says why: `authorization_pending`, "
            "`slow_down` (wait `Retry-After` seconds), `access_denied`, `expired_token` or "
            "`invalid_grant`."
        ),
        request=DeviceTokenInputSerializer,
        responses=DeviceTokenSerializer,
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = DeviceTokenInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grant_type = data.validated_data.get("grant_type")
        if grant_type and grant_type != DEVICE_CODE_GRANT:
            raise ApplicationError(
                f"grant_type must be {DEVICE_CODE_GRANT}.", code="unsupported_grant_type"
            )
        pair = devices.device_token_poll(device_code=data.validated_data["device_code"])
        body = {
            "token": pair.token,
            "refresh_token": pair.refresh_token,
            "message": "Device login approved",
            # RFC 6749 §5.1's names too, for standard device-flow clients.
            "access_token": pair.token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
        }
        return Response(DeviceTokenSerializer(body).data, headers=NO_STORE)


class MeApi(APIView):
    """``GET /api/me`` and ``PATCH /api/me``: read or rename the signed-in user."""

    @extend_schema(
        summary="Your profile",
        description="The signed-in user: id, email, name, whether staff, and when they joined.",
        responses=MeOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(MeOutputSerializer(request.user).data)

    @extend_schema(
        summary="Rename yourself",
        description="Sets the name shown in the dashboard (blank clears it).",
        request=MeUpdateInputSerializer,
        responses=MeOutputSerializer,
    )
    def patch(self, request: Request) -> Response:
        serializer = MeUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_update_profile(user=request.user, name=serializer.validated_data["name"])  # type: ignore[arg-type]
        return Response(MeOutputSerializer(user).data)
