"""Requests refused (or cleaned) before any view sees them."""

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware


class NulCharacter(SuspiciousOperation):
    """A NUL character (``%00``) in the path or the query string."""


@sync_and_async_middleware  # under ASGI a sync-only middleware holds a thread per request
def refuse_nul_characters(get_response: Any) -> Any:
    """A NUL in the path or query string is a 400 (``core.views.bad_request``: JSON or a
    page); a cookie holding one is dropped. No address of ours holds one, and PostgreSQL
    refuses it in any text a query compares, so the first filter that received one answered
    500. A cookie can carry one too (``sessionid="…\\000…"`` is printable, and Django's
    cookie parser decodes the octal escape); it is ignored rather than refused, as a cookie
    may have been planted by someone else."""

    def check(request: HttpRequest) -> None:
        query = ((key, value) for key, values in request.GET.lists() for value in values)
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in query):
            raise NulCharacter("NUL character in the URL")  # never the URL itself
        cookies = request.COOKIES
        if any("\x00" in k or "\x00" in v for k, v in cookies.items()):
            request.COOKIES = {k: v for k, v in cookies.items() if "\x00" not in k + v}

    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            check(request)
            return await get_response(request)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        check(request)
        return get_response(request)

    return middleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async-capable: under ASGI (uvicorn) a sync-only middleware makes Django
    run every view below it in a thread, so an async view awaiting an assistant run would
    hold one. Static files are served as WhiteNoise serves them; the rest passes through."""

    async_capable = True
    sync_capable = True

    def __init__(self, get_response: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> Any:
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve)(static_file, request)
        return await self.get_response(request)
