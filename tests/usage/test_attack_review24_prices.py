"""Review 24: the per-process price memo (usage/services/pricing.py ``_memo``).

A price kept in the process must never outlive ``PRICE_TTL`` after it was read, whatever
another process's clock wrote as the shared entry's end and whatever this process's own
clock does; and the memo must not leak from one test into the next."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache

from tests import conftest
from usage.services import pricing
from usage.services.pricing import PRICE_TTL, catalog_prices

NOW = datetime(2026, 3, 5, 12, 30, tzinfo=UTC)
MINI = "gpt-4o-mini-2024-07-18"
PAIR = ("openai", MINI)
STALE = pricing.Price(Decimal("0.0000001"), Decimal("0.0000002"))  # before the sync
NEWER = pricing.Price(Decimal("0.003"), Decimal("0.004"))  # what the sync brought


@pytest.mark.django_db
def test_an_entry_written_by_a_process_whose_clock_runs_ahead_is_kept_no_longer_than_the_ttl(
    catalog,
):
    """One host's clock is an hour ahead (NTP broken on a worker, say): the entry it
    writes says it ends at its now + 300 s, an hour past the real end. Redis still drops
    it after 300 s, but every other process that read it kept it for an hour and five
    minutes: a price a sync changed was charged (or a model refused/allowed) for an hour,
    not "at most five minutes afterwards, as before" (docs/usage.md)."""
    key = pricing._cache_key(PAIR)
    with time_machine.travel(NOW, tick=False):
        cache.set(key, (STALE, NOW.timestamp() + 3600 + PRICE_TTL), PRICE_TTL)
        assert catalog_prices(pairs={PAIR})[PAIR] == STALE
    # Past PRICE_TTL: the shared entry ended (Redis counts real time); the catalog synced
    # and a process wrote the new price.
    with time_machine.travel(NOW + timedelta(seconds=PRICE_TTL + 1), tick=False):
        cache.set(key, (NEWER, time.time() + PRICE_TTL), PRICE_TTL)
        assert catalog_prices(pairs={PAIR})[PAIR] == NEWER


@pytest.mark.django_db
def test_a_clock_stepped_back_does_not_stretch_what_the_process_keeps(catalog, monkeypatch):
    """NTP steps this host's clock back an hour (a VM resumed, say). The memo compares the
    stored end with the wall clock, so a price read just before is kept for another hour
    and five minutes of real time, while Redis dropped the shared entry after 300 s."""
    key = pricing._cache_key(PAIR)
    with time_machine.travel(NOW, tick=False):
        first = catalog_prices(pairs={PAIR})[PAIR]
        assert first is not None and first != NEWER
    # 400 s of real time later (the monotonic clock moved on) the wall clock reads an
    # hour earlier than it should; the sync changed the price and a process wrote it.
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 400)
    with time_machine.travel(NOW - timedelta(hours=1) + timedelta(seconds=400), tick=False):
        cache.set(key, (NEWER, time.time() + PRICE_TTL), PRICE_TTL)
        assert catalog_prices(pairs={PAIR})[PAIR] == NEWER


def test_a_test_without_the_database_starts_with_no_remembered_price(settings):
    """Without Redis, ``_clean_cache`` returns early for a test that has no database, before
    it forgets the process's memos: a price a previous test priced is still served (with no
    database query at all) to the next test that has no database."""
    settings.REDIS_URL = ""  # the SQLite / database-cache configuration
    pricing._remember(pricing._cache_key(PAIR), time.time(), time.time() + 60, STALE)  # earlier

    class Node:
        def get_closest_marker(self, name):
            return None

    class Request:
        fixturenames: list[str] = []
        node = Node()

    fixture = conftest._clean_cache._get_wrapped_function()(Request())
    next(fixture)
    try:
        assert pricing._memo == {}
    finally:
        pricing.price_memo_forget()
        next(fixture, None)
