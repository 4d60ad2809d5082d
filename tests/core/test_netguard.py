"""core.netguard.is_public: which answers of a user's host name a key check may connect to.

Python 3.11's ``is_global`` passes some reserved IPv6 space; the documented rule refuses
reserved and site-local addresses too."""

import ipaddress

import pytest

from core.netguard import is_public


@pytest.mark.parametrize(
    "address",
    [
        "::7f00:1",  # IPv4-compatible ::127.0.0.1 (deprecated, reserved ::/8)
        "::a00:5",  # ::10.0.0.5
        "::ffff:0:7f00:1",  # SIIT IPv4-translated 127.0.0.1
        "64:ff9b:1::7f00:1",  # local-use NAT64 (RFC 8215)
        "64:ff9b:1::5db8:d70e",  # local-use NAT64, even of a public IPv4 address
        "fec0::1",  # site-local (deprecated, still routed in some networks)
        "fec0:0:0:ffff::1",
    ],
)
def test_reserved_and_site_local_ipv6_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
        "64:ff9b::5db8:d70e",  # well-known NAT64 of 93.184.215.14 (IPv6-only networks)
    ],
)
def test_global_unicast_addresses_are_public(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "::1", "::ffff:127.0.0.1", "64:ff9b::a00:5", "fe80::1"]
)
def test_private_addresses_stay_refused(address):
    assert not is_public(ipaddress.ip_address(address))
