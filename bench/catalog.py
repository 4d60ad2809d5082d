"""Catalog benchmark: full OpenRouter sync, then models-by-provider cold vs cached.

    .venv/bin/python bench/catalog.py [--requests 200]

Uses a throwaway test database on whatever DATABASE_URL points at (SQLite by default,
PostgreSQL when set) and the fake OpenRouter server on 127.0.0.1 serving every model of
the shipped snapshot (the real 2026-08-19 listing, 414 models) with per-model /endpoints.
The cache is Redis when REDIS_URL is set, else the database cache table.

Targets (issue 5): sync under 10 s; cached responses at least 5x uncached throughput.
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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
                f"   p95 {_percentile(cold, 0.95) * 1000:7.2f} ms"
            )
            print(
                f"  cached:   {warm_rps:8.1f} req/s   p50 {statistics.median(warm) * 1000:7.2f} ms"
                f"   p95 {_percentile(warm, 0.95) * 1000:7.2f} ms"
            )
            print(f"  cached / uncached throughput: {warm_rps / cold_rps:.1f}x")

        cold, warm = results["all models"]
        ratio = (len(warm) / sum(warm)) / (len(cold) / sum(cold))
        ok_sync, ok_cache = sync_seconds < 10, ratio >= 5
        print("\nTargets:")
        verdict = {True: "OK", False: "MISSED"}
        print(
            f"  sync of ~400 models with endpoints < 10 s: {sync_seconds:.2f} s  {verdict[ok_sync]}"
        )
        print(f"  cached >= 5x uncached throughput:          {ratio:.1f}x  {verdict[ok_cache]}")
        return 0 if ok_sync and ok_cache else 1
    finally:
        services.catalog_cache_invalidate()
        connection.creation.destroy_test_db(real_name, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
