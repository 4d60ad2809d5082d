"""The key-vault JSON API (seed 001), scoped to the caller; plus the backend-only fetch."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import user_of
from core.errors import ApplicationError
from core.ids import parse_id
from keys import selectors, services
from keys.access import (
    api_key_fetch,
    fetch_bad_secret_record,
    fetch_caller_check,
    fetch_denied_record,
)
from keys.models import ApiKey, KeyAuditEvent
from keys.serializers import (
    ApiKeyCreateInputSerializer,
    ApiKeyFetchInputSerializer,
    ApiKeyFetchOutputSerializer,
    ApiKeyOutputSerializer,
    ApiKeyUpdateInputSerializer,
    AuditEventOutputSerializer,
    ProjectInputSerializer,
    ProjectOutputSerializer,
)

Source = KeyAuditEvent.Source
API = Source.API


def _project(request: Request, project_id: Any) -> Any:
    if project_id is None:
        return None
    return selectors.project_get(owner=user_of(request), project_id=project_id)


def _key_data(request: Request, api_key: ApiKey) -> Any:
    """The key object, re-read through the selector after a write (for ``last_used_at``)."""
    if not hasattr(api_key, "last_used_at"):
        api_key = selectors.api_key_get(owner=user_of(request), key_id=api_key.pk)
    return ApiKeyOutputSerializer(api_key).data


def _key_delete(request: Request, key_id: int) -> Response:
    api_key = selectors.api_key_get(owner=user_of(request), key_id=key_id)
    services.api_key_delete(
        acting_user=user_of(request), api_key=api_key, origin=services.Origin.of(request, API)
    )
    return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyCollectionApi(APIView):
    """``GET /api/keys``, ``POST /api/keys``, ``DELETE /api/keys?id=<id>``."""

    @extend_schema(
        summary="List your keys",
        description="Your stored keys, newest first, masked: never the key itself. Filter by "
        "project (`none` for keys outside projects) and provider.",
        parameters=[
            OpenApiParameter("project_id", str, description="a project id, or `none`"),
            OpenApiParameter("provider", str),
        ],
        responses=ApiKeyOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        keys = selectors.api_key_list(
            owner=user_of(request),
            project_id=request.query_params.get("project_id"),
            provider=request.query_params.get("provider"),
        )
        return Response(ApiKeyOutputSerializer(keys, many=True).data)

    @extend_schema(
        summary="Add a key",
        description=(
            "Checks the key's format, then asks the provider whether it works, then stores "
            "it encrypted. A key the provider rejects is not saved (400 `invalid_key`); one "
            "it could not be asked about is saved with status `unverified`. The first key of "
            "a provider in a project becomes its default."
        ),
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        api_key, _ = services.api_key_create(
            acting_user=user_of(request),
            provider=data["provider"],
            name=data["name"],
            secret=data["key"],
            project=_project(request, data.get("project_id")),
            base_url=data.get("base_url", ""),
            is_default=data["is_default"],
            origin=services.Origin.of(request, API),
        )
        return Response(_key_data(request, api_key), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="api_keys_destroy_by_query",
        summary="Delete a key by query",
        description="Seed 001's form of `DELETE /api/keys/<id>`. The key's audit trail stays.",
        parameters=[OpenApiParameter("id", int, required=True)],
        responses={204: None},
    )
    def delete(self, request: Request) -> Response:
        raw = request.query_params.get("id")
        key_id = parse_id(raw)
        if key_id is None:
            raise ApplicationError(
                "Pass the key's id: DELETE /api/keys?id=<id>.",
                fields={"id": ["This parameter is required." if not raw else "Not a key id."]},
            )
        return _key_delete(request, key_id)


class ApiKeyDetailApi(APIView):
    """``GET /api/keys/<id>`` (masked), ``PATCH`` (name, project_id, is_default, or key to
    rotate), ``DELETE``."""

    @extend_schema(
        summary="One of your keys",
        description="The key's details, masked. Another user's key is a 404.",
        responses=ApiKeyOutputSerializer,
    )
    def get(self, request: Request, key_id: int) -> Response:
        api_key = selectors.api_key_get(owner=user_of(request), key_id=key_id)
        return Response(_key_data(request, api_key))

    @extend_schema(
        summary="Change a key",
        description=(
            "Rename it, move it to another project (`null`: none), make it the default, "
            "and/or rotate it (`key`, checked with the provider first). All or nothing: a "
            "refused part changes nothing."
        ),
        request=ApiKeyUpdateInputSerializer,
        responses=ApiKeyOutputSerializer,
    )
    def patch(self, request: Request, key_id: int) -> Response:
        api_key = selectors.api_key_get(owner=user_of(request), key_id=key_id)
        serializer = ApiKeyUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        api_key = services.api_key_update(
            acting_user=user_of(request),
            api_key=api_key,
            name=data.get("name"),
            project=_project(request, data["project_id"])
            if "project_id" in data
            else services.UNSET,
            is_default=data.get("is_default"),
            secret=data.get("key"),
            origin=services.Origin.of(request, API),
        )
        return Response(_key_data(request, api_key))

    @extend_schema(
        summary="Delete a key",
        description="The key is gone for good; its audit trail stays (name and mask only).",
        responses={204: None},
    )
    def delete(self, request: Request, key_id: int) -> Response:
        return _key_delete(request, key_id)


class ApiKeyValidateApi(APIView):
    """``POST /api/keys/<id>/validate``: check a stored key with its provider again."""

    @extend_schema(
        summary="Check a key again",
        description="Asks the provider whether the stored key still works and records the "
        "answer. A provider that cannot be reached leaves the status as it was.",
        request=None,
        responses=ApiKeyOutputSerializer,
    )
    def post(self, request: Request, key_id: int) -> Response:
        api_key = selectors.api_key_get(owner=user_of(request), key_id=key_id)
        services.api_key_revalidate(
            api_key=api_key, acting_user=user_of(request), origin=services.Origin.of(request, API)
        )
        return Response(_key_data(request, api_key))


class ApiKeyEventsApi(APIView):
    """``GET /api/keys/<id>/events``: the key's audit trail, newest first."""

    @extend_schema(
        summary="A key's audit trail",
        description="Everything done with the key, newest first: created, checked, used, "
        "fetched, changed, with who and from which address.",
        responses=AuditEventOutputSerializer(many=True),
    )
    def get(self, request: Request, key_id: int) -> Response:
        api_key = selectors.api_key_get(owner=user_of(request), key_id=key_id)
        events = selectors.audit_events_for_key(owner=user_of(request), api_key=api_key)
        return Response(AuditEventOutputSerializer(events, many=True).data)


class ApiKeyFetchApi(APIView):
    """``POST /api/keys/fetch``: a user's decrypted key, for backend services only.

    Authenticated by ``Authorization: Bearer <SERVER_SECRET_KEY>`` (constant-time
    comparison), not by a user session. Every call is audited; per-user rate limit. An
    address that sent too many wrong secrets is refused (429) before its secret is compared,
    and such refusals are counted on one audit row per address and hour, not one each.
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()

    @extend_schema(
        summary="Fetch a user's key (backend only)",
        description=(
            "For Kay's own backend services: the decrypted key that answers for the user and "
            "provider (the project's default, else the user's default, else their only key). "
            "Send `Authorization: Bearer <SERVER_SECRET_KEY>`. Every call is audited and "
            "rate limited; an address that sent too many wrong secrets gets 429."
        ),
        request=ApiKeyFetchInputSerializer,
        responses=ApiKeyFetchOutputSerializer,
        auth=[],
    )
    @sensitive_variables("plaintext", "body")
    def post(self, request: Request) -> Response:
        where = services.Origin.of(request, Source.FETCH_API)
        fetch_caller_check(origin=where)
        if not _server_secret_ok(request.META.get("HTTP_AUTHORIZATION", "")):
            fetch_bad_secret_record(origin=where)
            raise ApplicationError(
                "Send the server secret as Authorization: Bearer <SERVER_SECRET_KEY>.",
                code="not_authenticated",
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="kay-keys-fetch"'},
            )
        try:
            serializer = ApiKeyFetchInputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
        except (ParseError, ValidationError):
            fetch_denied_record(origin=where, reason="bad_request", user_id=_claimed(request))
            raise
        data = serializer.validated_data
        api_key, plaintext = api_key_fetch(
            user_id=data["user_id"],
            provider=data["provider"],
            project_id=data.get("project_id"),
            origin=where,
        )
        body = {"key": plaintext, "key_id": api_key.pk, "provider": api_key.provider}
        return Response(body, headers={"Cache-Control": "no-store"})


def _claimed(request: Request) -> Any:
    """The user id a refused caller named, for the audit row (None if unreadable)."""
    try:
        data = request.data
    except ParseError:
        return None
    return data.get("user_id") if isinstance(data, dict) else None


def _server_secret_ok(header: str) -> bool:
    scheme, _, token = header.partition(" ")
    expected = settings.SERVER_SECRET_KEY.encode()
    return hmac.compare_digest(token.strip().encode(), expected) and scheme.lower() == "bearer"


class ProjectCollectionApi(APIView):
    """``GET /api/projects``, ``POST /api/projects``."""

    @extend_schema(
        summary="List your projects",
        description="Your projects with how many keys each holds.",
        responses=ProjectOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        projects = selectors.project_list(owner=user_of(request))
        return Response(ProjectOutputSerializer(projects, many=True).data)

    @extend_schema(
        summary="Create a project",
        description="A named group of keys, each provider with its own default key in it.",
        request=ProjectInputSerializer,
        responses={201: ProjectOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ProjectInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(
            acting_user=user_of(request),
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
            origin=services.Origin.of(request, API),
        )
        project = selectors.project_get(owner=user_of(request), project_id=project.pk)
        return Response(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    """``GET``, ``PATCH``, ``DELETE /api/projects/<id>`` (delete refuses a non-empty one)."""

    @extend_schema(
        summary="One of your projects",
        description="The project with its key count. Another user's project is a 404.",
        responses=ProjectOutputSerializer,
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(owner=user_of(request), project_id=project_id)
        return Response(ProjectOutputSerializer(project).data)

    @extend_schema(
        summary="Rename a project",
        description="Change its name and/or description.",
        request=ProjectInputSerializer(partial=True),
        responses=ProjectOutputSerializer,
    )
    def patch(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(owner=user_of(request), project_id=project_id)
        serializer = ProjectInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.project_update(
            acting_user=user_of(request),
            project=project,
            name=serializer.validated_data.get("name"),
            description=serializer.validated_data.get("description"),
            origin=services.Origin.of(request, API),
        )
        return Response(ProjectOutputSerializer(project).data)

    @extend_schema(
        summary="Delete a project",
        description="Only an empty project: one that still holds keys is a 409.",
        responses={204: None},
    )
    def delete(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get(owner=user_of(request), project_id=project_id)
        services.project_delete(
            acting_user=user_of(request), project=project, origin=services.Origin.of(request, API)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
