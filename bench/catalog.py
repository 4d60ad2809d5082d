"""Catalog benchmark: full OpenRouter sync, then models-by-provider cold vs cached.

    .venv/bin/python bench/catalog.py [--requests 200]

Uses a throwaway test database on whatever DATABASE_URL points at (SQLite by default,
PostgreSQL when set) and the fake OpenRouter server on 127.0.0.1 serving every model of
the shipped snapshot (the real 2026-08-19 listing, 414 models) with per-model /endpoints.
The cache is Redis when REDIS_URL is set, else the database cache table.

Then the same cached document as identity, gzip and Brotli, requests interleaved so each
coding sees the same conditions: bytes on the wire (status line, headers and body, as
HTTP/1.1 without chunking) and throughput.

Targets (issue 5): sync under 10 s; cached responses at least 5x uncached throughput.
Targets (issue 9): compressed answers at least 5x fewer bytes on the wire, and cached
throughput no lower than uncompressed.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import percentile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


CODINGS = ("identity", "gzip", "br")


def _compare_codings(http: Any, url: str, requests: int) -> dict[str, tuple[int, list[float]]]:
    """Wire bytes and timings per coding, interleaved request by request."""
    timings: dict[str, list[float]] = {coding: [] for coding in CODINGS}
    sizes: dict[str, int] = {}
    for coding in CODINGS:  # fill the cache (all codings at once) and check the coding
        response = http.get(url, HTTP_ACCEPT_ENCODING=coding)
        assert response.get("Content-Encoding", "identity") == coding, coding
        sizes[coding] = len(b"HTTP/1.1 200 OK\r\n" + response.serialize())
    for _ in range(requests):
        for coding in CODINGS:
            started = time.perf_counter()
            response = http.get(url, HTTP_ACCEPT_ENCODING=coding)
            timings[coding].append(time.perf_counter() - started)
            assert response.status_code == 200
    return {coding: (sizes[coding], timings[coding]) for coding in CODINGS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel /endpoints calls")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from models_catalog import services
    from models_catalog.api import CatalogModelsByProviderApi
    from models_catalog.models import Model, ModelEndpoint, Provider
    from models_catalog.openrouter import OpenRouterClient
    from tests.fakes.openrouter import FakeOpenRouter, shipped_models

    setup_test_environment()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    logging.getLogger("models_catalog").setLevel(logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="kay-bench-")
    # A database of its own, so a concurrent test run's test_<name> database is left alone.
    connection.settings_dict["TEST"]["NAME"] = (
        os.path.join(tmp, "bench.sqlite3")
        if connection.vendor == "sqlite"
        else f"{connection.settings_dict['NAME']}_bench_catalog"
    )
    real_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    # Measure the view, not the per-client rate limit.
    CatalogModelsByProviderApi.throttle_classes = []
    # No cache.clear(): on Redis that would flush a database other processes share.
    services.catalog_cache_invalidate()
    backend = f"{connection.vendor}, cache: {settings.CACHES['default']['BACKEND'].split('.')[-1]}"
    print(f"Kay catalog benchmark ({backend})")

    try:
        with FakeOpenRouter(shipped_models()) as fake:
            with OpenRouterClient(base_url=fake.base_url, api_key="") as client:
                started = time.perf_counter()
                summary = services.catalog_sync(client=client, concurrency=args.concurrency)
                sync_seconds = time.perf_counter() - started
                started = time.perf_counter()
                again = services.catalog_sync(client=client, concurrency=args.concurrency)
                resync_seconds = time.perf_counter() - started
            requests_made = len(fake.requests)
        rows = (Model.objects.count(), ModelEndpoint.objects.count(), Provider.objects.count())
        print(
            f"\nFull sync: {sync_seconds:.2f} s  ({rows[0]} models, {rows[1]} endpoints, "
            f"{rows[2]} providers; {requests_made // 2} HTTP requests, failed {summary.failed})"
        )
        unchanged = again.counts["models"]["unchanged"]
        print(f"Re-sync, same data: {resync_seconds:.2f} s  ({unchanged} models unchanged)")

        http = Client()
        url = "/api/openrouter/models-by-provider"
        results = {}
        for label, query in [
            ("all models", ""),
            ("tools, <= $1/M, sorted by price", "?supports=tools&max_prompt_price=1&sort=price"),
        ]:
            cold, warm = [], []
            for _ in range(args.requests):
                services.catalog_cache_invalidate()  # a new catalog version: the next read misses
                started = time.perf_counter()
                response = http.get(url + query)
                cold.append(time.perf_counter() - started)
                assert response.status_code == 200
            http.get(url + query)
            for _ in range(args.requests):
                started = time.perf_counter()
                response = http.get(url + query)
                warm.append(time.perf_counter() - started)
                assert response.status_code == 200
            size = len(response.content)
            results[label] = (cold, warm)
            cold_rps, warm_rps = len(cold) / sum(cold), len(warm) / sum(warm)
            print(f"\nmodels-by-provider, {label} ({size / 1024:.0f} KiB):")
            print(
                f"  uncached: {cold_rps:8.1f} req/s   p50 {statistics.median(cold) * 1000:7.2f} ms"
                f"   p95 {percentile(cold, 0.95) * 1000:7.2f} ms"
            )
            print(
                f"  cached:   {warm_rps:8.1f} req/s   p50 {statistics.median(warm) * 1000:7.2f} ms"
                f"   p95 {percentile(warm, 0.95) * 1000:7.2f} ms"
            )
            print(f"  cached / uncached throughput: {warm_rps / cold_rps:.1f}x")

        print("\nmodels-by-provider, all models, cached, by Accept-Encoding:")
        codings = _compare_codings(http, url, args.requests)
        plain_bytes, plain_times = codings["identity"]
        plain_rps = len(plain_times) / sum(plain_times)
        for coding, (size, times) in codings.items():
            rps = len(times) / sum(times)
            print(
                f"  {coding:8s} {size / 1024:7.0f} KiB on the wire"
                f" ({plain_bytes / size:4.1f}x fewer)"
                f"   {rps:7.1f} req/s ({rps / plain_rps:.2f}x)"
                f"   p50 {statistics.median(times) * 1000:6.2f} ms"
            )

        cold, warm = results["all models"]
        ratio = (len(warm) / sum(warm)) / (len(cold) / sum(cold))
        smallest = min(plain_bytes / codings[c][0] for c in ("gzip", "br"))
        slowest = min(len(codings[c][1]) / sum(codings[c][1]) for c in ("gzip", "br"))
        checks = {
            f"sync of ~400 models with endpoints < 10 s: {sync_seconds:.2f} s": sync_seconds < 10,
            f"cached >= 5x uncached throughput:          {ratio:.1f}x": ratio >= 5,
            f"gzip and Brotli >= 5x fewer bytes:         {smallest:.1f}x": smallest >= 5,
            f"compressed cached >= uncompressed req/s:   {slowest / plain_rps:.2f}x": (
                slowest >= plain_rps
            ),
        }
        print("\nTargets:")
        for text, ok in checks.items():
            print(f"  {text}  {'OK' if ok else 'MISSED'}")
        return 0 if all(checks.values()) else 1
    finally:
        services.catalog_cache_invalidate()
        connection.creation.destroy_test_db(real_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
