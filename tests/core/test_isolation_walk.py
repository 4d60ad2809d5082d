"""Every route with an object in its path answers another user 404, for every method, and
changes nothing. The routes come from the URL resolver, so a new app's routes are walked
the day they are added.

Each path parameter must name an owned object (``OWNED``: one line per kind of object) or
its route must be in ``SKIPPED`` with the reason it names nothing of one user's. charlie,
who owns nothing, asks first: signed in to a browser for pages, with a personal API token
for the API. alice then sends the same request, which must not be a 404 — so the object
was really the one the route serves, and the 404 was about who asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from accounts.tokens import api_token_create, cli_session_start
from assistant.models import AssistantRun, InteractiveSession
from tests.fakes.providers import FakeProviders
from tests.keys.factories import ApiKeyFactory, ProjectFactory, secret_for
from tests.usage.factories import BudgetFactory

# The same on every database: .ci/run runs it on PostgreSQL only.
pytestmark = pytest.mark.backend_independent


@dataclass(frozen=True)
class Owned:
    make: Callable[[Any], Any]  # a model instance of this kind owned by the given user
    in_path: Callable[[Model], object] = attrgetter("pk")


# Path parameter → how alice gets an object of that kind. A new app adds a line here.
OWNED: dict[str, Owned] = {
    "key_id": Owned(lambda owner: ApiKeyFactory(owner=owner, project=ProjectFactory(owner=owner))),
    "project_id": Owned(lambda owner: ProjectFactory(owner=owner)),
    "token_id": Owned(lambda owner: api_token_create(user=owner, name="laptop")[0]),
    "public_id": Owned(
        lambda owner: cli_session_start(user=owner, origin="device"), attrgetter("public_id")
    ),
    "session_id": Owned(
        lambda owner: InteractiveSession.objects.create(owner=owner, title="Sprint", messages=[])
    ),
    "budget_id": Owned(lambda owner: BudgetFactory(owner=owner)),
    "run_id": Owned(
        lambda owner: AssistantRun.objects.create(owner=owner, mode="one_shot", prompt="Hi")
    ),
}

# Routes whose parameters name nothing that belongs to one user, and why.
SKIPPED: dict[str, str] = {
    "auth/status/<str:state>": (
        "the state is the CLI's own secret, not an id; a signed-in stranger is refused in "
        "tests/connections/test_isolation.py::test_bob_cannot_poll_alices_state"
    ),
    "connections/oauth/confirm/<int:link_id>": (
        "a sign-in waiting for the browser that brought the CLI's code back (a signed nonce "
        "cookie), made before any account may exist; every other browser is told nothing "
        "waits, exactly as for an id that does not exist (tests/connections/test_phishing.py)"
    ),
    "dashboard/connections/<slug:service>/connect": "a service name; acts on the caller only",
    "dashboard/connections/<slug:service>/disconnect": "a service name; acts on the caller only",
    "dashboard/models/providers/<slug:slug>/allow/": (
        "a provider of the public catalog; writes the caller's own preferences"
    ),
    "dashboard/models/<path:model_id>/": "a model of the public catalog, the same for everyone",
    "dashboard/models/<path:model_id>/allow/": (
        "a model of the public catalog; writes the caller's own preferences"
    ),
    "dashboard/models/<path:model_id>/prefer/": (
        "a model of the public catalog; writes the caller's own preferences"
    ),
    "dashboard/<slug:slug>/": "a dashboard section by name",
}
SKIPPED_NAMESPACES = {"admin": "operators only; tests/accounts/test_admin.py keeps others out"}
SKIPPED_MODULES = {"allauth.": "allauth's one-time keys, mailed to the address's owner"}

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
NEW_SECRET = secret_for("openai", 999_999)
# What a form or JSON body might carry: enough for a write to happen if the check is gone.
BODY = {
    "name": "charlie was here",
    "description": "charlie was here",
    "key": NEW_SECRET,
    "provider": "openai",
    "action": "link",
}
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


@dataclass(frozen=True)
class Route:
    route: str  # as written in urls.py, the prefixes of its includes joined: api/keys/<int:key_id>
    params: tuple[str, ...]
    namespace: str
    callback: Callable

    def __str__(self) -> str:
        return self.route

    @property
    def is_api(self) -> bool:
        return issubclass(getattr(self.callback, "view_class", object), APIView)

    @property
    def methods(self) -> tuple[str, ...]:
        """An API's own handlers; for a page, every method (it answers 405 to the rest)."""
        if not self.is_api:
            return METHODS
        allowed = self.callback.view_class().allowed_methods  # type: ignore[attr-defined]
        return tuple(method for method in METHODS if method in allowed)

    def url(self, values: dict[str, object]) -> str:
        return "/" + PARAMETER.sub(lambda m: str(values[m.group(1)]), self.route)

    def skip_reason(self) -> str | None:
        if self.route in SKIPPED:
            return SKIPPED[self.route]
        if self.namespace.split(":")[0] in SKIPPED_NAMESPACES:
            return SKIPPED_NAMESPACES[self.namespace.split(":")[0]]
        module = getattr(self.callback, "view_class", self.callback).__module__
        return next(
            (why for prefix, why in SKIPPED_MODULES.items() if module.startswith(prefix)), None
        )


def _params(pattern: Any) -> tuple[str, ...]:
    # From the compiled regex, not ``converters``: a re_path's is empty whatever it
    # captures. Unnamed groups are passed only when there is no named one (as Django does).
    named = tuple(pattern.regex.groupindex)
    return named or tuple(f"arg{index}" for index in range(pattern.regex.groups))


def _routes(
    patterns: list, prefix: str = "", params: tuple = (), namespace: str = ""
) -> Iterator[Route]:
    for entry in patterns:
        here = prefix + str(entry.pattern)
        found = params + _params(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace or ""]))
            yield from _routes(entry.url_patterns, here, found, inner)
        elif isinstance(entry, URLPattern) and found:
            yield Route(here, found, namespace, entry.callback)


ALL = list(_routes(get_resolver().url_patterns))
WALKED = [route for route in ALL if route.skip_reason() is None]


def _rows(objects: dict[str, Model]) -> dict[str, dict | None]:
    return {
        param: type(obj)._default_manager.filter(pk=obj.pk).values().first()
        for param, obj in objects.items()
    }


def _caller(user: Any, api: bool) -> Callable[[str, str], Any]:
    """Send a request as ``user``: a Bearer API token for the API, a browser for pages."""
    if api:
        client = APIClient()
        client.credentials(
            HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='walk')[1]}"
        )

        def send_api(method: str, url: str) -> Any:
            body = None if method in ("GET", "DELETE") else BODY
            return getattr(client, method.lower())(url, body, format="json")

        return send_api
    browser = Client()
    browser.force_login(user)

    def send_page(method: str, url: str) -> Any:
        if method == "GET":
            return browser.get(url)
        form = urlencode(BODY)
        return browser.generic(method, url, form, "application/x-www-form-urlencoded")

    return send_page


@pytest.fixture
def providers(settings):
    """Provider checks an owner's request may run go to a fake on 127.0.0.1."""
    fake = FakeProviders({NEW_SECRET}).start()
    fake.configure(settings)
    yield fake
    fake.stop()


@pytest.mark.parametrize("route", WALKED, ids=str)
def test_another_user_gets_404_for_every_method(route, alice, charlie, providers):
    unowned = [param for param in route.params if param not in OWNED]
    if unowned:
        pytest.fail(
            f"/{route} names {', '.join(unowned)}, which this test cannot make: add a line to "
            "OWNED (parameter → how its owner gets one) or to SKIPPED (route → why it names "
            "nothing of one user's)",
            pytrace=False,
        )
    stranger, owner = _caller(charlie, route.is_api), _caller(alice, route.is_api)
    isolated, wrong = [], []
    for method in route.methods:
        objects = {param: OWNED[param].make(alice) for param in route.params}
        url = route.url({param: OWNED[param].in_path(obj) for param, obj in objects.items()})
        before = _rows(objects)
        theirs = stranger(method, url)
        assert _rows(objects) == before, f"{method} {url} by another user changed alice's object"
        mine = owner(method, url).status_code
        if theirs.status_code == 404 and mine != 404:
            isolated.append(method)
            if route.is_api:
                assert theirs.json()["error"]["code"] == "not_found", (method, url)
        elif route.is_api or theirs.status_code != mine or mine not in (404, 405):
            # For a page, the same 404 or 405 for both is a method it does not serve.
            wrong.append(f"{method}: another user {theirs.status_code}, the owner {mine}")
    assert not wrong and isolated, (
        f"/{route} must answer another user's object with 404, and its owner otherwise: "
        + ("; ".join(wrong) or "no method served the owner")
    )


def test_every_skipped_route_still_exists():
    routes = {route.route for route in ALL}
    assert not [route for route in SKIPPED if route not in routes]


def test_the_walk_covers_the_owned_kinds():
    walked = {param for route in WALKED for param in route.params}
    assert set(OWNED) <= walked


def test_a_route_written_as_a_regular_expression_is_walked_too():
    """A ``re_path`` names its parameters as groups, not converters (its pattern's
    ``converters`` is empty): it must not drop out of the walk unnoticed."""
    from django.urls import re_path

    def view(request, **kwargs):  # pragma: no cover - never called
        raise AssertionError

    found = list(
        _routes([re_path(r"^things/(?P<thing_id>[0-9]+)/$", view), re_path(r"^n/(\d+)/$", view)])
    )
    assert [route.params for route in found] == [("thing_id",), ("arg0",)]
    assert any(route.route.startswith("accounts/^confirm-email/") for route in ALL)
