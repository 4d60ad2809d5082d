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


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


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
    if isinstance(exc, ApplicationError):
        set_rollback()
        response = Response(exc.as_dict(), status=exc.status, headers=exc.headers)
        if isinstance(exc, NotConfigured):
            # A setup gap, not a failure: a warning with the operator's hint, instead of
            # Django's ERROR line for a 5xx.
            logger.warning("%s", exc.operator_hint)
            response._has_been_logged = True  # type: ignore[attr-defined]
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # reading request.data past the upload limit
        set_rollback()
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than the limit of {limit} bytes."
        return Response(error_body("request_too_large", message), status=413)
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError("The request could not be read.")

    if isinstance(exc, exceptions.APIException):
        set_rollback()
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
        code = _CODES.get(exc.status_code, "error")
        if isinstance(exc, exceptions.ParseError):
            code = "parse_error"
        if isinstance(exc, exceptions.ValidationError):
            detail = _without_echoes(exc.detail)
            fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
            message = _message(detail)
            if isinstance(detail, dict):
                message = "Some fields are not valid."
            return Response(
                error_body(code, message, fields), status=exc.status_code, headers=headers
            )
        if isinstance(exc, exceptions.Throttled):
            message = "Too many requests. Try again later."
        elif type(exc) in _FIXED:
            message = _FIXED[type(exc)]
        else:
            message = _message(exc.detail)
        return Response(error_body(code, message), status=exc.status_code, headers=headers)

    # Anything else is a bug: log it (through the redacting filter) and say nothing more.
    logger.exception("Unhandled API error in %s", context.get("view").__class__.__name__)
    set_rollback()
    return Response(
        error_body("server_error", "Something went wrong on our side. It has been logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
