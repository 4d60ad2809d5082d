"""Django's own middleware, minus a thread hop per hook under ASGI.

Under ASGI, Django runs each ``process_request`` and ``process_response`` of a
``MiddlewareMixin`` in a thread (``sync_to_async``) in case it does I/O, and adapts a sync
``process_view`` the same way: the seven in ``MIDDLEWARE`` cost fifteen hops on every
request, about 2 ms here. These subclasses call the hooks that do no I/O on the event loop
and keep the hop where one may: a session to save, messages to store, a form body to read
for the CSRF token, CSRF kept in the session. A hook that did reach the database on the
event loop would fail loudly (``SynchronousOnlyOperation``), never quietly.

``MIDDLEWARE`` keeps Django's own names: Django's deploy checks look for them by name (a
subclass listed instead turns off the HSTS, SSL-redirect, X-Frame-Options and CSRF checks
without a word). :class:`InlineMiddlewareASGIHandler`, Kay's ASGI application
(``config.asgi``), loads these in their place; WSGI and Django's test clients load
Django's classes as they are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


class InlineHooks:
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


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    """Headers and the HTTPS redirect: no I/O."""


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    """Host check, the trailing-slash redirect (URL resolving), Content-Length: no I/O."""


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    """One header: no I/O."""


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    """Sets a lazy ``request.user``: the session is read where the user is first used."""


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    """The store is made lazily; only a save (or its every-request setting) is I/O."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is None or session.modified or settings.SESSION_SAVE_EVERY_REQUEST


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    """Only messages read or added are stored (in a cookie, or the session: I/O)."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or storage.used or storage.added_new


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
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


# Django's class listed in MIDDLEWARE → the one the ASGI application loads in its place.
INLINE = {
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.contrib.sessions.middleware.SessionMiddleware": SessionMiddleware,
    "django.middleware.common.CommonMiddleware": CommonMiddleware,
    "django.middleware.csrf.CsrfViewMiddleware": CsrfViewMiddleware,
    "django.contrib.auth.middleware.AuthenticationMiddleware": AuthenticationMiddleware,
    "django.contrib.messages.middleware.MessageMiddleware": MessageMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
}


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@contextmanager
def _inline_in_place() -> Iterator[None]:
    """``settings.MIDDLEWARE`` with Django's classes swapped for these while a handler
    builds its chain from it (once, at start-up), then back as it was."""
    listed = settings.MIDDLEWARE
    settings.MIDDLEWARE = [_path(INLINE[path]) if path in INLINE else path for path in listed]
    try:
        yield
    finally:
        settings.MIDDLEWARE = listed


class InlineMiddlewareASGIHandler(ASGIHandler):
    """Django's ASGI handler, with Django's own middleware loaded through this module."""

    def load_middleware(self, is_async: bool = False) -> None:
        with _inline_in_place():
            super().load_middleware(is_async=is_async)
