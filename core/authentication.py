"""Authentication classes shared by every API."""

from rest_framework import authentication
from rest_framework.request import Request


class SessionAuthentication(authentication.SessionAuthentication):
    """Browser sessions with CSRF checks; unauthenticated requests get 401, not 403."""

    def authenticate_header(self, request: Request) -> str:
        return 'Session realm="kay"'
