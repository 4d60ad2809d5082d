"""One DRF exception handler: every API error becomes the same JSON shape."""

import logging
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions, relations, serializers, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError, NotConfigured

logger = logging.getLogger(__name__)

_CODES = {
    400: "validation_error",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _default_message(template: Any) -> re.Pattern[str]:
    """Matches DRF's default message ``template`` whatever was filled into it."""
    parts = re.split(r"\{\w+\}", str(template))
    return re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)


# DRF's default messages that quote the rejected input (raw text, perhaps a secret pasted in
# the wrong field), and what we say instead. A serializer's own message is kept.
_ECHOES = [
    (
        _default_message(serializers.ChoiceField.default_error_messages["invalid_choice"]),
        "Not one of the allowed values.",
    ),
    (
        _default_message(relations.PrimaryKeyRelatedField.default_error_messages["does_not_exist"]),
        "No such object.",
    ),
    (
        _default_message(relations.SlugRelatedField.default_error_messages["does_not_exist"]),
        "No such object.",
    ),
]
# Fixed messages for DRF errors whose default quotes a request header or method.
_FIXED = {
    exceptions.MethodNotAllowed: "This method is not allowed here.",
    exceptions.UnsupportedMediaType: "Send the body as JSON (Content-Type: application/json).",
}


def _message(detail: Any) -> str:
    if isinstance(detail, list | tuple) and detail:
        return _message(detail[0])
    if isinstance(detail, dict):
        return "Some fields are not valid."
    return str(detail)


def _without_echoes(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {name: _without_echoes(value) for name, value in detail.items()}
    if isinstance(detail, list):
        return [_without_echoes(value) for value in detail]
    for pattern, text in _ECHOES:
        if pattern.fullmatch(str(detail)):
            return exceptions.ErrorDetail(text, code=getattr(detail, "code", None))
    return detail


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    error = _as_application_error(exc)
    if error is None:
        # Anything else is a bug: log it (through the redacting filter) and say nothing more.
        logger.exception("Unhandled API error in %s", context.get("view").__class__.__name__)
        error = ApplicationError(
            "Something went wrong on our side. It has been logged.",
            code="server_error",
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    set_rollback()
    response = Response(error.as_dict(), status=error.status, headers=error.headers)
    if isinstance(error, NotConfigured):
        # A setup gap, not a failure: a warning with the operator's hint, instead of
        # Django's ERROR line for a 5xx.
        logger.warning("%s", error.operator_hint)
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _as_application_error(exc: Exception) -> ApplicationError | None:
    """``exc`` as the error a client is told about; None for a bug."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, RequestDataTooBig):  # reading request.data past the upload limit
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return ApplicationError(
            f"The request body is larger than the limit of {limit} bytes.",
            code="request_too_large",
            status=413,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")
    if not isinstance(exc, exceptions.APIException):
        return None

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    code = "parse_error" if isinstance(exc, exceptions.ParseError) else None
    code = code or _CODES.get(exc.status_code, "error")
    fields = None
    if isinstance(exc, exceptions.ValidationError):
        detail = _without_echoes(exc.detail)
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        message = _message(detail)
    elif isinstance(exc, exceptions.Throttled):
        message = "Too many requests. Try again later."
    else:
        message = _FIXED.get(type(exc)) or _message(exc.detail)
    return ApplicationError(
        message, code=code, fields=fields, status=exc.status_code, headers=headers
    )
