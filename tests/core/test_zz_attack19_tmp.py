from typing import Any
import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

pytestmark = [pytest.mark.django_db(transaction=True)]

def _run(f: Any) -> Any:
    return async_to_sync(f)()

@pytest.mark.parametrize("sid", ["abc", "x" * 32, "\x00bad"])
def test_bogus_session_cookie(sid):
    async def s():
        c = AsyncClient()
        c.cookies["sessionid"] = sid
        out = []
        for p in ["/", "/dashboard/", "/accounts/login/", "/nope", "/dashboard"]:
            r = await c.get(p)
            out.append((p, r.status_code, r.cookies.get("sessionid") and r.cookies["sessionid"].value))
        r = await c.post("/ask", {"prompt": "x"})
        out.append(("POST /ask", r.status_code))
        r = await c.head("/ask")
        out.append(("HEAD /ask", r.status_code))
        return out
    print(_run(s))

def test_logout_flow(alice):
    async def s():
        c = AsyncClient(enforce_csrf_checks=True)
        await c.aforce_login(alice)
        sid = c.cookies["sessionid"].value
        r = await c.get("/accounts/logout/")
        tok = c.cookies["csrftoken"].value
        r2 = await c.post("/accounts/logout/", {"csrfmiddlewaretoken": tok})
        r3 = await c.get("/dashboard/")
        return sid, r.status_code, r2.status_code, r2.cookies.get("sessionid") and r2.cookies["sessionid"].value, r3.status_code
    print(_run(s))
