"""The Redis cache shares one connection pool per process: under ASGI Django makes a cache
object per request, and each used to open its own connection to Redis."""

import contextvars
import os

import pytest
from django.core.cache import caches
from django.test import override_settings

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL")
# A server address of this test's own (its client name): pools are per process and
# address, and other tests' use of REDIS_URL must not count here.
OWN = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}client_name=kay-test-shared-pool"
CACHE = {"default": {"BACKEND": "core.cache.SharedPoolRedisCache", "LOCATION": OWN}}


def _in_a_new_request_context(work):
    """As the ASGI handler runs each request: in a fresh context of its own."""
    return contextvars.Context().run(work)


def test_requests_in_their_own_contexts_share_one_connection():
    def one_request():
        cache = caches["default"]
        cache.set("kay-test-shared-pool", "1", 5)
        assert cache.get("kay-test-shared-pool") == "1"
        return cache, cache._cache._get_connection_pool(write=True)

    with override_settings(CACHES=CACHE):
        first, first_pool = _in_a_new_request_context(one_request)
        second, second_pool = _in_a_new_request_context(one_request)
    assert first is not second  # Django's own per-context objects
    assert first_pool is second_pool
    assert first_pool._created_connections == 1


def test_a_pool_is_per_server():
    other = OWN.replace("kay-test-shared-pool", "kay-test-other-pool")
    with override_settings(CACHES={"default": {**CACHE["default"], "LOCATION": other}}):
        pool = caches["default"]._cache._get_connection_pool(write=True)
    with override_settings(CACHES=CACHE):
        assert caches["default"]._cache._get_connection_pool(write=True) is not pool


def test_requests_and_threads_share_one_client_per_pool():
    """Django built a redis-py client for every command; one per pool is shared (a client
    takes a connection from its pool per command), and answers stay each caller's own."""
    import threading

    clients, answers = [], {}

    def one_request(n):
        cache = caches["default"]
        cache.set(f"kay-test-shared-client-{n}", n, 5)
        answers[n] = cache.get(f"kay-test-shared-client-{n}")
        clients.append(cache._cache.get_client(write=True))

    with override_settings(CACHES=CACHE):
        threads = [
            threading.Thread(target=_in_a_new_request_context, args=(lambda n=n: one_request(n),))
            for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read_client = caches["default"]._cache.get_client()
    assert answers == {n: n for n in range(8)}
    assert len({id(client) for client in clients}) == 1
    assert read_client is clients[0]
