"""Malformed input never makes the API answer 500 or repeat what was sent (issue 8).

The sweep walks every DRF view the URL resolver lists, so an endpoint added later is
covered without touching this file.
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from core.ids import MAX_ID, parse_id
from core.parsers import MAX_DEPTH, _check
from tests.keys.conftest import server_auth
from tests.keys.factories import ApiKeyFactory, ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.backend_independent]

MARKER = "kay-raw-input-marker"
HUGE = "99999999999999999999"  # past any primary key (and SQLite's 64-bit integers)
BAD_IDS = ["²", "١", HUGE, "-1", "0", "1.0", " 1", "1\n"]


def _routes(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _api_views() -> list[tuple[str, type[APIView]]]:
    """(route, view class) of every DRF endpoint."""
    found = []
    for route, pattern in _routes(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        if isinstance(view, type) and issubclass(view, APIView):
            assert not route.startswith("^"), f"fill the regex route {route} by hand"
            found.append((route, view))
    return found


def _path(route: str, number: str = "1") -> str:
    """The route with its parameters filled: ``number`` for ints, a word otherwise."""
    return "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: number if m[1] == "int" else "x", route)


def _limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


# name -> body bytes; each is refused before any view code sees it.
BODIES = {
    "deep nesting": lambda: b"[" * 100_000,
    "deep but balanced": lambda: b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "lone surrogate": lambda: b'{"provider": "\\ud800", "name": "\\udfff"}',
    "invalid JSON": lambda: f'{{"provider": "{MARKER}'.encode(),
    "invalid UTF-8": lambda: b'{"name": "\xff\xfe' + MARKER.encode() + b'"}',
    "over the upload limit": lambda: b'{"name": "' + MARKER.encode() * (_limit() // 10) + b'"}',
}

WRITES = [
    (method, route)
    for route, view in _api_views()
    for method in ("post", "put", "patch")
    if hasattr(view, method)
]
# The health check waits for a Celery worker; it reads no input.
READS = [
    (method, route)
    for route, view in _api_views()
    for method in ("get", "delete")
    if hasattr(view, method) and route != "health"
]


# Pages with an id in the path (the admin is Django's own and takes no int converters).
PAGES = [
    route
    for route, pattern in _routes(get_resolver().url_patterns)
    if "<int:" in route and not isinstance(getattr(pattern.callback, "cls", None), type)
]


@pytest.fixture(autouse=True)
def _configured(settings):
    """A server with its integrations set up, so each endpoint reads what it is sent (an
    unconfigured one answers 503 before reading anything)."""
    settings.STRIPE_WEBHOOK_SECRET = "whsec_malformed_input_walk"


@pytest.fixture(params=["signed in", "anonymous"])
def caller(request: pytest.FixtureRequest) -> Client:
    client = Client(raise_request_exception=False)
    if request.param == "signed in":
        client.force_login(request.getfixturevalue("alice"))
    return client


def _assert_safe_answer(response, *, raw: str = MARKER) -> None:
    """Not a 500; an error in the JSON error shape; nothing sent repeated back."""
    assert response.status_code < 500, response.content[:300]
    text = response.content.decode()
    assert raw not in text
    assert "ud800" not in text and "Traceback" not in text
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert set(body) == {"error"}
        assert {"code", "message"} <= set(body["error"])


def test_the_sweep_finds_the_json_endpoints():
    assert ("post", "api/keys") in WRITES
    assert ("post", "api/keys/fetch") in WRITES
    assert ("put", "api/models/preferences") in WRITES
    assert ("get", "api/keys") in READS
    assert "dashboard/keys/<int:key_id>/edit/" in PAGES


@pytest.mark.parametrize("payload", list(BODIES))
@pytest.mark.parametrize(("method", "route"), WRITES, ids=[f"{m} {r}" for m, r in WRITES])
def test_a_malformed_body_is_refused_with_the_error_shape(caller, method, route, payload):
    response = getattr(caller, method)(
        _path(route), BODIES[payload](), content_type="application/json"
    )
    # A view may refuse earlier (401, 404, a bad query parameter) or never read the body
    # (logout): any answer but a 500, without the input.
    _assert_safe_answer(response)


@pytest.mark.parametrize(("method", "route"), READS, ids=[f"{m} {r}" for m, r in READS])
def test_bad_ids_in_paths_and_query_strings_are_never_a_500(caller, method, route):
    for bad in BAD_IDS:
        query = {name: bad for name in ("id", "project_id", "key_id", "token_id", "page")}
        response = getattr(caller, method)(_path(route, HUGE), query_params=query)
        # Short ASCII values ("0") occur in any answer; look for the distinctive ones.
        _assert_safe_answer(response, raw=bad if bad in ("²", "١", HUGE) else MARKER)


@pytest.mark.parametrize("route", PAGES)
def test_a_huge_id_in_a_page_path_is_never_a_500(alice_browser, route):
    alice_browser.raise_request_exception = False
    for method in ("get", "post"):
        response = getattr(alice_browser, method)(_path(route, HUGE))
        assert response.status_code < 500, (method, response.content[:300])


# --- The cases the attack review reported ----------------------------------------------


def test_deeply_nested_json_is_a_400_not_a_recursion_error(alice_api):
    response = alice_api.post("/api/keys", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "nested" in error["message"]


def test_json_at_the_depth_limit_is_still_read(alice_api):
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    body = '{"name": "x" , "extra": ' + nested + "}"
    response = alice_api.patch("/api/me", body, content_type="application/json")
    assert response.status_code == 200


def test_a_lone_surrogate_is_a_400_that_does_not_repeat_it(alice_api):
    response = alice_api.post(
        "/api/keys", '{"provider": "\\ud800"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "ud800" not in response.content.decode()


def test_an_escaped_surrogate_pair_is_an_ordinary_character(alice_api):
    response = alice_api.patch(
        "/api/me", '{"name": "Alice \\ud83d\\ude00"}', content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Alice \U0001f600"


def test_a_body_over_the_upload_limit_is_a_413(alice_api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"name": "' + "x" * 1000 + '"}'
    response = alice_api.post("/api/projects", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_too_large",
        "message": "The request body is larger than the limit of 1000 bytes.",
    }


def test_an_unknown_provider_is_refused_without_quoting_it(alice_api):
    body = {"provider": f"sk-live-{MARKER}", "name": "n", "key": "k"}
    response = alice_api.post("/api/keys", body, format="json")
    assert response.status_code == 400
    assert MARKER not in response.content.decode()
    assert "openai" in response.json()["error"]["fields"]["provider"][0]


@pytest.mark.parametrize("bad", ["²", "١", HUGE, "-1", "1.5"])
def test_a_bad_project_filter_is_a_400_field_error(alice_api, bad):
    response = alice_api.get("/api/keys", {"project_id": bad})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {"project_id": ["Not a project id."]}
    assert bad not in response.content.decode()


@pytest.mark.parametrize("bad", ["²", HUGE])
def test_a_bad_key_id_to_delete_is_a_400_field_error(alice_api, alice, bad):
    ApiKeyFactory(owner=alice)
    response = alice_api.delete(f"/api/keys?id={bad}")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"id": ["Not a key id."]}


def test_a_huge_key_id_in_the_path_is_a_404(alice_api):
    assert alice_api.get(f"/api/keys/{HUGE}").status_code == 404
    assert alice_api.get(f"/api/projects/{HUGE}").status_code == 404


@pytest.mark.parametrize("field", ["project_id"])
@pytest.mark.parametrize("bad", [int(HUGE), "²", "١", -1, 0, 1.5, True])
def test_a_bad_project_id_in_a_body_is_a_400_field_error(alice_api, alice, field, bad):
    key = ApiKeyFactory(owner=alice)
    response = alice_api.patch(f"/api/keys/{key.pk}", {field: bad}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {field: ["Not a valid id."]}


@pytest.mark.parametrize("param", ["project", "project_id"])
@pytest.mark.parametrize("bad", ["²", HUGE])
def test_the_keys_page_survives_a_bad_project_filter(alice_browser, alice, param, bad):
    ProjectFactory(owner=alice)
    alice_browser.raise_request_exception = False
    response = alice_browser.get("/dashboard/keys/", {param: bad})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/keys/new/?project=²",
        f"/dashboard/keys/new/?project={HUGE}",
        "/dashboard/onboarding/?step=²",
        f"/dashboard/onboarding/?step={HUGE}",
    ],
)
def test_pages_survive_bad_ids_in_the_query(alice_browser, path):
    alice_browser.raise_request_exception = False
    assert alice_browser.get(path).status_code == 200


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        (str(MAX_ID), MAX_ID),
        (MAX_ID, MAX_ID),
        (7, 7),
        (str(MAX_ID + 1), None),
        (MAX_ID + 1, None),
        ("0", None),
        ("-1", None),
        ("²", None),
        ("١", None),
        ("1\n", None),
        ("", None),
        (None, None),
        (True, None),
        (1.0, None),
    ],
)
def test_parse_id_accepts_only_ascii_digits_in_range(raw, expected):
    assert parse_id(raw) == expected


@pytest.mark.parametrize("payload", list(BODIES))
def test_fetch_with_the_server_secret_refuses_a_malformed_body(api_client, settings, payload):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000  # the sweep sends the full-size body
    response = api_client.post(
        "/api/keys/fetch", BODIES[payload](), content_type="application/json", **server_auth()
    )
    _assert_safe_answer(response)
    assert response.status_code in (400, 413)


@pytest.mark.parametrize("bad", [int(HUGE), "²", 0])
def test_fetch_refuses_a_bad_user_id_with_a_field_error(api_client, bad):
    body = {"user_id": bad, "provider": "openai"}
    response = api_client.post("/api/keys/fetch", body, format="json", **server_auth())
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"user_id": ["Not a valid id."]}


def test_a_bad_catalog_filter_is_refused_without_quoting_it(api_client):
    query = {"sort": MARKER, "supports": MARKER, "data_policy": MARKER, "min_context": MARKER}
    response = api_client.get("/api/openrouter/models-by-provider", query)
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == set(query)
    assert MARKER not in response.content.decode()


def test_a_page_form_over_the_upload_limit_is_a_413_page(client, alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    client.force_login(alice)
    response = client.post("/dashboard/tokens/", {"name": "x" * 5000}, HTTP_ACCEPT="text/html")
    assert response.status_code == 413
    assert b"too large" in response.content


@pytest.mark.parametrize("sub", ["²", "99999999999999999999", "-1"])
@pytest.mark.parametrize("kind", ["api", "cli_session"])
def test_a_signed_token_with_an_odd_subject_is_a_401_not_a_500(api_client, db, kind, sub):
    from accounts.tokens import CliSessionToken, PersonalApiToken

    token = PersonalApiToken() if kind == "api" else CliSessionToken()
    token["sub"] = sub
    token["version"] = settings.API_TOKEN_VERSION
    token["sid"] = "00000000-0000-0000-0000-000000000000"
    response = api_client.get("/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


# --- NUL characters: PostgreSQL refuses them in any text a query compares ------------------


@pytest.mark.parametrize(
    ("method", "route"), READS + WRITES, ids=[f"{m} {r}" for m, r in READS + WRITES]
)
def test_a_nul_character_in_the_query_string_is_a_400_everywhere(caller, method, route):
    query = {name: f"\x00{MARKER}" for name in ("provider", "service", "session_id", "id")}
    response = getattr(caller, method)(_path(route), query_params=query)
    _assert_safe_answer(response)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("query", ["provider=%00", "%00=1"])
def test_a_nul_in_the_keys_provider_filter_is_a_400_not_a_database_error(alice_api, query):
    response = alice_api.get(f"/api/keys?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/dashboard/keys/?provider=%00", "/dashboard/models/openai%00x/"])
def test_pages_answer_a_nul_with_a_400_page(alice_browser, path):
    alice_browser.raise_request_exception = False
    response = alice_browser.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/dashboard/", "/api/keys", "/accounts/login/"])
def test_a_session_cookie_decoding_to_a_nul_is_ignored_not_a_500(path):
    """``"…\\000…"`` is a printable cookie (servers pass it) that Django decodes to a NUL;
    the session lookup then failed on PostgreSQL for every page."""
    client = Client(raise_request_exception=False)
    client.cookies.load({"sessionid": "abcdefgh\x00ijklmnop"})
    cookie = client.cookies.output(attrs=[], header="").strip()
    assert "\\000" in cookie  # what a browser would send
    response = client.get(path)
    assert response.status_code < 500


@pytest.mark.parametrize(
    "wide", [[0] * 1_000_000, [""] * 800_000, [[]] * 800_000], ids=["numbers", "strings", "lists"]
)
def test_checking_a_wide_body_holds_no_entry_per_value(wide):
    """A 2.5 MB body of a million small values: the depth and surrogate check walks it with
    at most MAX_DEPTH open containers, not one stack entry per value (about 75 MB)."""
    tracemalloc.start()
    try:
        _check(wide)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("number", ["9" * 5000, "NaN", "-Infinity"])
def test_a_number_json_cannot_hold_is_a_400_saying_so(alice_api, number):
    response = alice_api.post(
        "/api/projects", f'{{"name": {number}}}', content_type="application/json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "number too long" in error["message"]
