"""Authentication classes shared by every API."""

from rest_framework import authentication, exceptions
from rest_framework.request import Request


class SessionAuthentication(authentication.SessionAuthentication):
    """Browser sessions with CSRF checks; unauthenticated requests get 401, not 403."""

    def authenticate_header(self, request: Request) -> str:
        return 'Session realm="kay"'

    def enforce_csrf(self, request: Request) -> None:
        # Django's reasons quote the request's Origin or Referer header; say what to do
        # instead of repeating what was sent.
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied:
            raise exceptions.PermissionDenied(
                "CSRF check failed: send the csrftoken cookie's value in X-CSRFToken, "
                "from a page of this site."
            ) from None
