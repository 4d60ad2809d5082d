"""Signing in and out through Kay's ASGI application (config.asgi: Django's middleware on
the event loop where it does no I/O, core.inline_middleware): CSRF refuses a form without
its token, a sign-in issues a new session that the next page reads, a sign-out ends it."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.core.test_inline_middleware import asgi_client

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-Xy12345!!long"


def test_sign_in_and_out_under_asgi(alice):
    alice.set_password(PASSWORD)
    alice.save()

    async def scenario() -> dict[str, Any]:
        async with asgi_client() as client:
            form = await client.get("/accounts/login/")
            token = client.cookies["csrftoken"]
            before = client.cookies.get("sessionid")
            credentials = {"login": alice.email, "password": PASSWORD}
            refused = await client.post("/accounts/login/", data=credentials)
            signed_in = await client.post(
                "/accounts/login/", data={**credentials, "csrfmiddlewaretoken": token}
            )
            session = client.cookies.get("sessionid")
            dashboard = await client.get("/dashboard/")
            token = client.cookies["csrftoken"]  # rotated at sign-in
            signed_out = await client.post("/accounts/logout/", data={"csrfmiddlewaretoken": token})
            after = await client.get("/dashboard/")
            return {
                "form": form.status_code,
                "refused": refused.status_code,
                "signed_in": signed_in.status_code,
                "new_session": bool(session) and session != before,
                "dashboard": dashboard.status_code,
                "signed_out": signed_out.status_code,
                "after": (after.status_code, after.headers.get("location", "").split("?")[0]),
            }

    assert async_to_sync(scenario)() == {
        "form": 200,
        "refused": 403,
        "signed_in": 302,
        "new_session": True,
        "dashboard": 200,
        "signed_out": 302,
        "after": (302, "/accounts/login/"),
    }
