"""Django's middleware under ASGI with its I/O-free hooks on the event loop
(core.inline_middleware): sessions are still saved, messages still stored, CSRF still
enforced — and a request that needs none of that takes no thread hop for them."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, override_settings

from core import inline_middleware

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("tests.core.inline_urls"),
]


def _run(coroutine_function: Any) -> Any:
    return async_to_sync(coroutine_function)()


def test_a_session_written_under_asgi_is_saved_and_read_back():
    async def scenario() -> tuple[int, bytes]:
        client = AsyncClient()
        written = await client.get("/session/set", {"colour": "teal"})
        read = await client.get("/session/get")
        return written.status_code, read.content

    assert _run(scenario) == (200, b"teal")


def test_messages_added_under_asgi_are_shown_on_the_next_page_once():
    async def scenario() -> tuple[bytes, bytes]:
        client = AsyncClient()
        added = await client.get("/messages/add")
        assert added.status_code == 302
        shown = await client.get("/messages/show")
        again = await client.get("/messages/show")
        return shown.content, again.content

    assert _run(scenario) == (b"Saved.", b"")


def test_csrf_is_still_enforced_for_a_form_post_under_asgi():
    async def scenario() -> tuple[int, int]:
        client = AsyncClient(enforce_csrf_checks=True)
        refused = await client.post("/form", {"name": "x"})
        await client.get("/session/get")  # any page: no token yet, so send one
        client.cookies["csrftoken"] = "a" * 32
        accepted = await client.post("/form", {"name": "x", "csrfmiddlewaretoken": "a" * 32})
        return refused.status_code, accepted.status_code

    assert _run(scenario) == (403, 200)


@override_settings(CSRF_USE_SESSIONS=True)
def test_csrf_kept_in_the_session_still_works_under_asgi():
    async def scenario() -> tuple[int, int]:
        client = AsyncClient(enforce_csrf_checks=True)
        refused = await client.post("/form", {"name": "x"})
        return refused.status_code, (await client.get("/session/get")).status_code

    assert _run(scenario) == (403, 200)


def test_a_request_needing_no_io_from_them_takes_no_hop(monkeypatch):
    hops: list[Any] = []
    real = inline_middleware.sync_to_async

    def counting(function: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(function)
        return real(function, *args, **kwargs)

    monkeypatch.setattr(inline_middleware, "sync_to_async", counting)

    async def scenario() -> list[int]:
        client = AsyncClient()
        plain = await client.get("/session/get")  # reads no session cookie: nothing to save
        assert plain.content == b"none"
        before = len(hops)
        await client.get("/session/set", {"colour": "red"})  # this one saves
        return [before, len(hops)]

    quiet, after_save = _run(scenario)
    assert quiet == 0
    assert after_save >= 1
