"""``GET /api/openrouter/models-by-provider`` (seed 000), used by the CLI and extensions.

Public: the catalog is OpenRouter's public data and the CLI reads it before sign-in.
Cached per filter set for 60 s (in the shared cache, so every web process benefits),
already compressed in each coding we serve, with an ETag so clients can revalidate for
free.
"""

import hashlib
import json
import logging

from django.core.cache import cache
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError
from core.throttling import AnonThrottle, UserThrottle
from models_catalog import compression, selectors, services
from models_catalog.filters import SORTS, CatalogFilters
from models_catalog.forms import CatalogFilterForm
from models_catalog.payloads import CAPABILITIES
from models_catalog.serializers import PreferencesInputSerializer, PreferencesOutputSerializer
from models_catalog.services import catalog_version

logger = logging.getLogger(__name__)

CACHE_SECONDS = 60
CACHE_CONTROL = f"public, max-age={CACHE_SECONDS}"


def _etag_matches(header: str, etag: str) -> bool:
    # Weak comparison (RFC 9110 13.1.2), as If-None-Match asks for.
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


def _etag(document: dict[str, object]) -> str:
    """A weak ETag of the data alone: ``generated_at`` changes every time the document is
    rebuilt (cache expiry, another process), which must not invalidate clients' copies."""
    data = {key: value for key, value in document.items() if key != "generated_at"}
    raw = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return f'W/"{hashlib.sha256(raw.encode()).hexdigest()[:40]}"'


def _cached_document(filters: CatalogFilters, coding: str) -> tuple[bytes, str]:
    """The response body in ``coding`` and the ETag for a filter set, from the shared
    cache when present. A miss builds the document and caches it in every coding at once,
    so all codings expire together and none is compressed per request.

    A cache that is down (Redis, or the database cache table) must not take the catalog
    down with it: the document is then built for this request only."""
    try:
        key = f"models_catalog:mbp:{catalog_version()}:{filters.cache_key()}"
        # One entry per coding: a gzip answer does not read the 1 MiB identity body.
        cached = cache.get(f"{key}:{coding}")
    except Exception:
        logger.warning("Cache unavailable; building the catalog without it", exc_info=True)
        key, cached = "", None
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    document = selectors.models_by_provider(filters=filters)
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    etag = _etag(document)
    if not key:
        return compression.encode(body, coding), etag
    bodies = compression.encode_all(body)
    try:
        cache.set_many(
            {f"{key}:{name}": (data, etag) for name, data in bodies.items()}, CACHE_SECONDS
        )
    except Exception:
        logger.warning("Could not cache the catalog document", exc_info=True)
    return bodies[coding], etag


def _list(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, description=description)


class _FailOpen:
    """Rate limits that let a request through when the cache holding the counters is
    down: this read-only, public endpoint should keep answering (seed 000's fallback)."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc,no-any-return]
        except Exception:
            logger.warning("Rate-limit cache unavailable; allowing the request", exc_info=True)
            return True


class CatalogAnonThrottle(_FailOpen, AnonThrottle):
    pass


class CatalogUserThrottle(_FailOpen, UserThrottle):
    pass


class CatalogModelsByProviderApi(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [CatalogAnonThrottle, CatalogUserThrottle]

    @extend_schema(
        summary="Models grouped by provider",
        description=(
            "Providers (location, data policy, URLs) each with the models they serve "
            "(pricing per token as decimal strings, context, capabilities, endpoint). "
            "Served from the synced tables, or from the shipped backup snapshot when they "
            "are empty (`source`). List parameters take `a,b` or repeat the parameter. "
            "Prices in filters are USD per million tokens. Sent Brotli- or gzip-compressed "
            "when `Accept-Encoding` allows (about 12x smaller)."
        ),
        parameters=[
            _list("provider", "provider slugs, e.g. `openai,anthropic`"),
            _list("location", "country codes of headquarters or data centres, e.g. `US,SG`"),
            _list("data_policy", "trains, retains, zero_retention, unknown"),
            OpenApiParameter("max_prompt_price", OpenApiTypes.DECIMAL, description="USD/M"),
            OpenApiParameter("max_completion_price", OpenApiTypes.DECIMAL, description="USD/M"),
            OpenApiParameter("min_context", OpenApiTypes.INT),
            _list("input_modality", "all required, e.g. `text,image`"),
            _list("output_modality", "all required"),
            _list("supports", ", ".join(CAPABILITIES)),
            OpenApiParameter("q", OpenApiTypes.STR, description="words in id, name or provider"),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(SORTS)),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="models-by-provider document"),
            304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)"),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        form = CatalogFilterForm(request.query_params)
        if not form.is_valid():
            raise ApplicationError(
                "Some filters are not valid.",
                code="validation_error",
                fields={name: [str(e) for e in errors] for name, errors in form.errors.items()},
            )
        filters = form.filters()
        coding = compression.coding_for(request.headers.get("Accept-Encoding"))
        body, etag = _cached_document(filters, coding)
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(body, content_type="application/json")
            if coding != compression.IDENTITY:
                response["Content-Encoding"] = coding
            response["Content-Length"] = str(len(body))
        # One weak ETag for every coding: they carry the same data (RFC 9110 8.8.1), so a
        # client that changes its Accept-Encoding still revalidates for free.
        response["ETag"] = etag
        response["Cache-Control"] = CACHE_CONTROL
        patch_vary_headers(response, ["Accept-Encoding"])
        return response


def _preferences_data(user: object) -> dict[str, object]:
    preferences = selectors.preferences_for(user=user)
    return PreferencesOutputSerializer(
        {
            "allowed_models": sorted(preferences.allowed_models),
            "allowed_providers": sorted(preferences.allowed_providers),
            "preferred_model": preferences.preferred_model,
            "restricted": preferences.restricted,
        }
    ).data


class CatalogPreferencesApi(APIView):
    """``GET/PUT /api/models/preferences``: the caller's allowed models and providers and
    the model the assistant uses. Empty allow lists mean every model is allowed."""

    @extend_schema(
        summary="Your model preferences",
        description="The models and providers you allow (empty lists allow every one), the "
        "model the assistant uses, and whether anything is restricted.",
        responses=PreferencesOutputSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(_preferences_data(request.user))

    @extend_schema(
        summary="Replace your model preferences",
        description="Sets all of them at once: what you leave out is cleared. Unknown model "
        "ids or provider slugs are a 400 naming them.",
        request=PreferencesInputSerializer,
        responses=PreferencesOutputSerializer,
    )
    def put(self, request: Request) -> Response:
        serializer = PreferencesInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.preferences_replace(user=request.user, **serializer.validated_data)
        return Response(_preferences_data(request.user))
