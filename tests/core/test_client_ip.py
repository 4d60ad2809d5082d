"""core.clientip: which address a request came from, with and without trusted proxies."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from core.clientip import client_ip, rate_limit_ident

PROXY = "10.0.0.5"


def request(forwarded=None, remote=PROXY):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_a_forged_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request("198.51.100.7")) == PROXY


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "198.51.100.7, 203.0.113.9", "203.0.113.9"),  # the left entry is the client's forgery
        (2, "198.51.100.7, 203.0.113.9, 10.0.0.4", "203.0.113.9"),
        (2, "203.0.113.9", "203.0.113.9"),  # fewer hops than proxies: what the first proxy saw
    ],
)
def test_with_trusted_proxies_the_nth_address_from_the_right_is_the_client(
    settings, proxies, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(request(forwarded)) == expected


def test_without_the_header_the_peer_is_the_client(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request()) == PROXY


@pytest.mark.parametrize("forwarded", ["unknown", "203.0.113.9:443", "", " , "])
def test_an_entry_that_is_not_an_address_falls_back_to_the_peer(settings, forwarded):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request(forwarded)) == PROXY


def test_addresses_are_canonical(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request("2001:DB8:0:0::0001")) == "2001:db8::1"


def test_no_valid_address_at_all_is_empty(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request(remote="")) == ""


def test_a_drf_request_gives_the_same_answer(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    django_request = request("198.51.100.7, 203.0.113.9")
    assert client_ip(Request(django_request)) == client_ip(django_request) == "203.0.113.9"


def test_an_ipv4_client_of_a_dual_stack_listener_is_its_ipv4_address(settings):
    """Behind ``[::]`` every IPv4 peer looks like ``::ffff:a.b.c.d``; as IPv6 they would all
    share the /64 ``::`` (one rate-limit budget for every IPv4 client)."""
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request(remote="::ffff:203.0.113.5")) == "203.0.113.5"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request("::ffff:198.51.100.7")) == "198.51.100.7"


def test_a_zone_id_is_not_part_of_the_address(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request(remote="fe80::1%eth0")) == client_ip(request(remote="fe80::1%2"))


@pytest.mark.parametrize(
    ("address", "ident"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("", ""),
    ],
)
def test_rate_limits_count_an_ipv6_client_by_its_64(address, ident):
    assert rate_limit_ident(address) == ident


def test_a_client_reaching_the_port_directly_cannot_forge_its_address(settings):
    """Behind a proxy (TRUSTED_PROXY_COUNT=1) whose port is also open to the internet, a
    public peer writing its own X-Forwarded-For is taken as itself."""
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(request("198.51.100.7", remote="203.0.113.50")) == "203.0.113.50"
    assert client_ip(request("198.51.100.7", remote=PROXY)) == "198.51.100.7"


def test_a_proxy_on_a_public_address_is_trusted_once_its_network_is_named(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.TRUSTED_PROXY_NETWORKS = ["203.0.113.0/24"]
    assert client_ip(request("198.51.100.7", remote="203.0.113.50")) == "198.51.100.7"
    assert client_ip(request("198.51.100.7", remote=PROXY)) == PROXY
