"""The one family of application errors. Services raise them; handlers map them."""

import math
from typing import Any


class ApplicationError(Exception):
    """An error a client can act on, rendered as ``{"error": {"code", "message"}}``."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.fields = fields
        self.status = status or self.status
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class PermissionDenied(ApplicationError):
    status = 403
    code = "permission_denied"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"


class LimitReached(Conflict):
    """An account already holds as many of something as one account may have."""

    code = "limit_reached"

    def __init__(self, *, limit: int, noun: str, remedy: str) -> None:
        plural = "" if limit == 1 else "s"
        super().__init__(
            f"You have {limit} {noun}{plural}, the most one account can have. {remedy}"
        )


class ProviderError(ApplicationError):
    """An outside service failed or answered something we cannot use."""

    status = 502
    code = "provider_error"


class ProviderUnavailable(ProviderError):
    """An outside service is down or busy for now (network error, 5xx, 429): try again later,
    not before ``retry_after`` seconds when the service said so."""

    status = 503
    code = "provider_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else None
        super().__init__(message, headers=headers)
        self.retry_after = retry_after


class ConnectionNeedsReauth(ApplicationError):
    status = 409
    code = "connection_needs_reauth"


class InsufficientCredits(ApplicationError):
    status = 402
    code = "insufficient_credits"


class RateLimited(ApplicationError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str = "Too many requests.", *, retry_after: int = 60) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class NotConfigured(ApplicationError):
    """A feature this server's operator has not set up: users get a plain "not available"
    message; the operator's hint (which settings to set) goes to the logs and to staff."""

    status = 503
    code = "not_configured"

    def __init__(self, message: str, *, operator_hint: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.operator_hint = operator_hint
