"""Django's middleware as Kay's ASGI application loads it (config.asgi: its I/O-free hooks
on the event loop, core.inline_middleware): sessions are still saved, messages still
stored, CSRF still enforced — and a request that needs none of that takes no thread hop
for them. Requests go through the real application, over httpx's ASGI transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.utils import deprecation

from config.asgi import application
from core import inline_middleware

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.core.inline_urls"),
]


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1"
    )


def _run(coroutine_function: Any) -> Any:
    return async_to_sync(coroutine_function)()


def test_a_session_written_under_asgi_is_saved_and_read_back():
    async def scenario() -> tuple[int, str]:
        async with asgi_client() as client:
            written = await client.get("/session/set", params={"colour": "teal"})
            read = await client.get("/session/get")
            return written.status_code, read.text

    assert _run(scenario) == (200, "teal")


def test_messages_added_under_asgi_are_shown_on_the_next_page_once():
    async def scenario() -> tuple[str, str]:
        async with asgi_client() as client:
            added = await client.get("/messages/add")
            assert added.status_code == 302
            shown = await client.get("/messages/show")
            again = await client.get("/messages/show")
            return shown.text, again.text

    assert _run(scenario) == ("Saved.", "")


def test_csrf_is_still_enforced_for_a_form_post_under_asgi():
    async def scenario() -> tuple[int, int]:
        async with asgi_client() as client:
            refused = await client.post("/form", data={"name": "x"})
            client.cookies.set("csrftoken", "a" * 32)
            accepted = await client.post(
                "/form",
                data={"name": "x", "csrfmiddlewaretoken": "a" * 32},
                headers={"Referer": "http://127.0.0.1/form"},
            )
            return refused.status_code, accepted.status_code

    assert _run(scenario) == (403, 200)


def test_csrf_kept_in_the_session_still_works_under_asgi(settings):
    settings.CSRF_USE_SESSIONS = True

    async def scenario() -> tuple[int, int]:
        async with asgi_client() as client:
            refused = await client.post("/form", data={"name": "x"})
            return refused.status_code, (await client.get("/session/get")).status_code

    assert _run(scenario) == (403, 200)


def test_the_application_runs_djangos_middleware_inline(monkeypatch):
    """Django's own adapter (a hop per hook) is never used; ours hops only to save."""
    django_hops: list[Any] = []
    our_hops: list[Any] = []
    real = inline_middleware.sync_to_async

    def counting(into: list[Any]) -> Any:
        def hop(function: Any, *args: Any, **kwargs: Any) -> Any:
            into.append(function)
            return real(function, *args, **kwargs)

        return hop

    monkeypatch.setattr(deprecation, "sync_to_async", counting(django_hops))
    monkeypatch.setattr(inline_middleware, "sync_to_async", counting(our_hops))

    async def scenario() -> list[int]:
        async with asgi_client() as client:
            plain = await client.get("/session/get")  # no session cookie: nothing to save
            assert plain.text == "none"
            quiet = len(our_hops)
            await client.get("/session/set", params={"colour": "red"})  # this one saves
            return [quiet, len(our_hops)]

    quiet, after_save = _run(scenario)
    assert django_hops == []
    assert quiet == 0 and after_save >= 1
