"""Rate limits count the real client: a forged X-Forwarded-For does not reset them, and
behind trusted proxies each client has its own budget."""

import pytest

from accounts.api import DevicePollThrottle, DeviceStartThrottle, RefreshThrottle
from connections.api import ConnectThrottle

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"
LIMIT = 3

ENDPOINTS = [
    pytest.param(RefreshThrottle, "/auth/refresh", {"refresh_token": "nope"}, id="refresh"),
    pytest.param(DeviceStartThrottle, "/api/auth/device", {}, id="device-start"),
    pytest.param(
        ConnectThrottle, "/connections/connect?service=jira", {}, id="connections-connect"
    ),
    pytest.param(DevicePollThrottle, "/api/auth/device/token", {"device_code": "x"}, id="poll"),
]


@pytest.fixture
def small_rates(monkeypatch):
    for throttle in (RefreshThrottle, DeviceStartThrottle, ConnectThrottle, DevicePollThrottle):
        monkeypatch.setattr(throttle, "rate", f"{LIMIT}/min")


def post(client, url, body, forwarded):
    return client.post(url, body, format="json", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)


@pytest.mark.parametrize(("throttle", "url", "body"), ENDPOINTS)
def test_rotating_x_forwarded_for_does_not_escape_the_limit(
    api_client, settings, small_rates, throttle, url, body
):
    settings.TRUSTED_PROXY_COUNT = 0
    answers = [post(api_client, url, body, f"198.51.100.{n}").status_code for n in range(LIMIT + 1)]
    assert 429 not in answers[:LIMIT]
    assert answers[LIMIT] == 429


@pytest.mark.parametrize(("throttle", "url", "body"), ENDPOINTS)
def test_behind_a_trusted_proxy_each_client_has_its_own_limit(
    api_client, settings, small_rates, throttle, url, body
):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(LIMIT):
        # The forged left entry changes every time; the proxy's entry is the client.
        assert post(api_client, url, body, f"198.51.100.{n}, 203.0.113.1").status_code != 429
    assert post(api_client, url, body, "198.51.100.99, 203.0.113.1").status_code == 429
    assert post(api_client, url, body, "203.0.113.2").status_code != 429


def failed_login(client, n, forwarded):
    return client.post(
        "/accounts/login/",
        {"login": f"someone{n}@example.com", "password": "wrong"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


LOCKED = b"Too many failed login attempts"


def test_allauth_login_limit_is_not_reset_by_a_forged_header(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for n in range(10):  # allauth: 10 failed logins a minute per address
        assert LOCKED not in failed_login(client, n, f"198.51.100.{n}").content
    assert LOCKED in failed_login(client, 10, "198.51.100.200").content


def test_allauth_login_limit_counts_each_client_behind_the_proxy(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(10):
        assert LOCKED not in failed_login(client, n, f"198.51.100.{n}, 203.0.113.1").content
    assert LOCKED in failed_login(client, 10, "198.51.100.99, 203.0.113.1").content
    assert LOCKED not in failed_login(client, 11, "203.0.113.2").content


# --- IPv6: one client holds a whole /64 ----------------------------------------------------


@pytest.mark.parametrize(("throttle", "url", "body"), ENDPOINTS)
def test_rotating_addresses_within_one_ipv6_64_does_not_escape_the_limit(
    api_client, settings, small_rates, throttle, url, body
):
    settings.TRUSTED_PROXY_COUNT = 0
    answers = [
        api_client.post(url, body, format="json", REMOTE_ADDR=f"2001:db8:1:2::{n:x}").status_code
        for n in range(1, LIMIT + 2)
    ]
    assert 429 not in answers[:LIMIT]
    assert answers[LIMIT] == 429
    # The next /64 is another client.
    other = api_client.post(url, body, format="json", REMOTE_ADDR="2001:db8:1:3::1")
    assert other.status_code != 429


def test_the_catalog_limit_counts_an_ipv6_client_by_its_64(api_client, monkeypatch):
    from models_catalog.api import CatalogAnonThrottle

    monkeypatch.setattr(CatalogAnonThrottle, "rate", "2/min", raising=False)
    url = "/api/openrouter/models-by-provider"
    codes = [api_client.get(url, REMOTE_ADDR=f"2001:db8:1:2::{n}").status_code for n in range(1, 4)]
    assert codes[2] == 429


def test_ipv4_clients_of_a_dual_stack_listener_each_have_their_own_allauth_limit(client, settings):
    """allauth counts an IPv6 client by its /64; an IPv4 peer seen as ``::ffff:a.b.c.d``
    must not fall into the shared ``::/64`` where one client locks out everyone."""
    settings.TRUSTED_PROXY_COUNT = 0

    def login(n, address):
        return client.post(
            "/accounts/login/",
            {"login": f"someone{n}@example.com", "password": "wrong"},
            REMOTE_ADDR=address,
        )

    for n in range(10):
        assert LOCKED not in login(n, "::ffff:203.0.113.1").content
    assert LOCKED in login(10, "::ffff:203.0.113.1").content
    assert LOCKED not in login(11, "::ffff:203.0.113.2").content


@pytest.mark.parametrize(("throttle", "url", "body"), ENDPOINTS)
def test_a_client_past_the_proxy_cannot_escape_the_limit_with_a_forged_header(
    api_client, settings, small_rates, throttle, url, body
):
    """TRUSTED_PROXY_COUNT=1, and Kay's port is reachable directly (compose publishes it):
    the direct client's own X-Forwarded-For must not make it a new client each time."""
    settings.TRUSTED_PROXY_COUNT = 1
    answers = [
        api_client.post(
            url,
            body,
            format="json",
            REMOTE_ADDR="203.0.113.50",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(LIMIT + 1)
    ]
    assert 429 not in answers[:LIMIT]
    assert answers[LIMIT] == 429


def test_allauth_login_limit_holds_for_a_client_past_the_proxy(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(10):
        response = client.post(
            "/accounts/login/",
            {"login": f"someone{n}@example.com", "password": "wrong"},
            REMOTE_ADDR="203.0.113.50",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
        assert LOCKED not in response.content
    response = client.post(
        "/accounts/login/",
        {"login": "someone10@example.com", "password": "wrong"},
        REMOTE_ADDR="203.0.113.50",
        HTTP_X_FORWARDED_FOR="198.51.100.200",
    )
    assert LOCKED in response.content
