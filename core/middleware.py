"""Requests refused (or cleaned) before any view sees them."""

from collections.abc import Callable

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse


class NulCharacter(SuspiciousOperation):
    """A NUL character (``%00``) in the path or the query string."""


def refuse_nul_characters(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """A NUL in the path or query string is a 400 (``core.views.bad_request``: JSON or a
    page); a cookie holding one is dropped. No address of ours holds one, and PostgreSQL
    refuses it in any text a query compares, so the first filter that received one answered
    500. A cookie can carry one too (``sessionid="…\\000…"`` is printable, and Django's
    cookie parser decodes the octal escape); it is ignored rather than refused, as a cookie
    may have been planted by someone else."""

    def middleware(request: HttpRequest) -> HttpResponse:
        query = ((key, value) for key, values in request.GET.lists() for value in values)
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in query):
            raise NulCharacter("NUL character in the URL")  # never the URL itself
        cookies = request.COOKIES
        if any("\x00" in k or "\x00" in v for k, v in cookies.items()):
            request.COOKIES = {k: v for k, v in cookies.items() if "\x00" not in k + v}
        return get_response(request)

    return middleware
