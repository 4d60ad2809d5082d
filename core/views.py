"""Root, health checks and error pages (HTML for browsers, JSON for API clients), and
what page views share."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError
from core.health import system_health
from core.serializers import HealthOutputSerializer


def _wants_html(request: HttpRequest) -> bool:
    # Browsers name text/html explicitly; CLIs send */* or application/json.
    return "text/html" in request.headers.get("Accept", "")


def redirect_back(request: HttpRequest, default: str) -> HttpResponse:
    """After a form's POST, back to the page it came from (its ``next`` field) when that
    is on this site, else to ``default``: never to another site (an open redirect)."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return redirect(target)


def root(request: HttpRequest) -> HttpResponse:
    """JSON liveness message for the CLI (seed 003); browsers go to the dashboard."""
    if _wants_html(request):
        return redirect("dashboard:overview")
    return JsonResponse(
        {"message": "Kay Backend running ✅"}, json_dumps_params={"ensure_ascii": False}
    )


def healthz(request: HttpRequest) -> HttpResponse:
    """Unauthenticated liveness for load balancers: the process answers, nothing more."""
    return JsonResponse({"status": "ok"})


class HealthApi(APIView):
    """``GET /health``: database, broker, a worker round trip, OpenAI configuration and
    the blocks apps contribute (``settings.HEALTH_CHECKS``: the assistant's ``mcp_jira``)."""

    @extend_schema(
        summary="System health",
        description=(
            "Whether the database, the broker and a worker answer (503 when one does not), "
            "whether OpenAI is configured, and the Jira tools' (MCP) last known state for "
            "you, each with how long its check took."
        ),
        responses={200: HealthOutputSerializer, 503: HealthOutputSerializer},
    )
    def get(self, request: Request) -> Response:
        body, healthy = system_health(user=request.user)
        return Response(body, status=200 if healthy else 503)


def _error(request: HttpRequest, status: int, code: str, title: str, message: str) -> HttpResponse:
    if _wants_html(request) and not request.path.startswith("/api/"):
        context: dict[str, Any] = {"status": status, "title": title, "message": message}
        return render(request, "core/error.html", context, status=status)
    return JsonResponse(ApplicationError(message, code=code).as_dict(), status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        return _error(
            request, 413, "request_too_large", "Too large", "The request body is too large."
        )
    return _error(
        request, 400, "bad_request", "Bad request", "The request could not be understood."
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(
        request, 403, "permission_denied", "Not allowed", "You do not have access to this page."
    )


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 404, "not_found", "Not found", "There is nothing at this address.")


def server_error(request: HttpRequest) -> HttpResponse:
    return _error(
        request,
        500,
        "server_error",
        "Something went wrong",
        "Something went wrong on our side. It has been logged.",
    )
