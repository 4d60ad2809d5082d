"""Django's own middleware, minus a thread hop per hook under ASGI.

Under ASGI, Django runs each ``process_request`` and ``process_response`` of a
``MiddlewareMixin`` in a thread (``sync_to_async``) in case it does I/O, and adapts a sync
``process_view`` the same way: the seven in ``MIDDLEWARE`` cost fifteen hops on every
request, about 2 ms here. These subclasses call the hooks that do no I/O on the event loop
and keep the hop where one may: a session to save, messages to store, a form body to read
for the CSRF token, CSRF kept in the session. Under WSGI (and Django's test client) they
are Django's classes unchanged. A hook that did reach the database on the event loop would
fail loudly (``SynchronousOnlyOperation``), never quietly."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class _InlineHooks:
    """Mixed into a ``MiddlewareMixin``: its async path calls the hooks inline unless the
    ``*_needs_thread`` checks say this request's may do I/O."""

    get_response: Any
    process_request: Any
    process_response: Any

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(_InlineHooks, security.SecurityMiddleware):
    """Headers and the HTTPS redirect: no I/O."""


class CommonMiddleware(_InlineHooks, common.CommonMiddleware):
    """Host check, the trailing-slash redirect (URL resolving), Content-Length: no I/O."""


class XFrameOptionsMiddleware(_InlineHooks, clickjacking.XFrameOptionsMiddleware):
    """One header: no I/O."""


class AuthenticationMiddleware(_InlineHooks, auth.AuthenticationMiddleware):
    """Sets a lazy ``request.user``: the session is read where the user is first used."""


class SessionMiddleware(_InlineHooks, sessions.SessionMiddleware):
    """The store is made lazily; only a save (or its every-request setting) is I/O."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is None or session.modified or settings.SESSION_SAVE_EVERY_REQUEST


class MessageMiddleware(_InlineHooks, messages.MessageMiddleware):
    """Only messages read or added are stored (in a cookie, or the session: I/O)."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or storage.used or storage.added_new


class CsrfViewMiddleware(_InlineHooks, csrf.CsrfViewMiddleware):
    """The secret comes from a cookie (no I/O) unless ``CSRF_USE_SESSIONS``. The view
    check is inline for safe methods and exempt views; otherwise it may read the form
    body for the token, so it keeps its thread."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        if self.async_mode:
            # Django adapts a sync process_view with a thread hop; an async one it awaits.
            sync_check = self.process_view

            async def process_view(
                request: HttpRequest, callback: Any, args: Any, kwargs: Any
            ) -> HttpResponseBase | None:
                if settings.CSRF_USE_SESSIONS or not (
                    request.method in SAFE_METHODS or getattr(callback, "csrf_exempt", False)
                ):
                    return await sync_to_async(sync_check)(request, callback, args, kwargs)
                return sync_check(request, callback, args, kwargs)

            self.process_view = process_view  # type: ignore[method-assign,assignment]

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)
