"""core.clientip: which address a request came from, with and without trusted proxies."""

import pytest
from django.test import RequestFactory
from rest_framework.request import Request

from core.clientip import client_ip

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
