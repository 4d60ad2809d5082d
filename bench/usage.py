"""Usage benchmark: fan-out fetch for many keys, and one user's month over a million buckets.

    DATABASE_URL=postgres://kay:kay@127.0.0.1:5432/kay .venv/bin/python bench/usage.py \
        [--part a|b] [--keys 500] [--latency 0.1] [--concurrency N] [--processes 1] [--refetch] \
        [--buckets 1000000] [--runs 30]

``--concurrency`` (default ``USAGE_FETCH_CONCURRENCY``, the per-provider limit) sets how
many fetches run at once in (a); with a limit of N no run can be more than N times faster
than one by one, and the fake's most requests in flight at once must stay within N.

Uses a throwaway database of its own next to DATABASE_URL's (created, then dropped), so a
concurrent test run's ``test_<name>`` database is left alone.

(a) ``usage_fetch_for_key`` for ``--keys`` OpenAI admin keys (each its own owner) against
    the fake OpenAI admin API on 127.0.0.1 answering every request ``--latency`` seconds
    late, run by ``--concurrency`` threads (what the per-provider limit lets the workers
    run at once), against the sequential estimate (requests x latency) and a measured
    sequential sample. Target (issue 10): at least 10x faster. Threads share one
    interpreter, so the CPU each fetch costs here (Kay, the SDK and the fake itself) also
    bounds the speed-up: the output shows that ceiling next to the limit's.
    ``--processes P`` forks P worker processes (as Celery's prefork pool runs, one per
    core) sharing the limit, ``concurrency // P`` threads each. ``--refetch`` times what
    runs every 15 minutes instead of a key's first fetch: every key was fetched once
    (untimed), and since then usage came in one hour of the 48 h re-read.
(b) PostgreSQL only: ``--buckets`` hourly buckets of one owner over a 31-day month
    (inserted with generate_series, indexes built afterwards, the daily rollup built by
    ``rollup_rewrite``), then
    p50/p95 of ``usage_summary(granularity="day")`` (reads the rollup) against the same
    aggregates computed straight from the buckets. Target: p50 under 150 ms.
"""

import argparse
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import percentile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

MODELS = 16  # models x keys x 744 hours ~ the bucket count
MONTH = date(2026, 3, 1)
MONTH_DAYS = 31


def _ms(values: list[float]) -> str:
    return (
        f"p50 {statistics.median(values) * 1000:8.1f} ms   "
        f"p95 {percentile(values, 0.95) * 1000:8.1f} ms"
    )


def _admin_secret(n: int) -> str:
    return f"sk-admin-BenchOrgAdminKey{n:06d}0000000000000000000000Zz01"


def _users(count: int, prefix: str) -> list[Any]:
    from accounts.models import User

    users = [User(email=f"{prefix}{n}@bench.example", name=f"{prefix} {n}") for n in range(count)]
    for user in users:
        user.set_unusable_password()  # no password hashing: 500 users in a blink
    return User.objects.bulk_create(users)


def _fetch_all(key_ids: list[int], threads: int) -> list[str]:
    """``usage_fetch_for_key`` for each key, ``threads`` at once, as one worker process
    does; each thread keeps its database connection, closed at the end (or the database
    could not be dropped)."""
    from django.db import connections

    from usage.services.fetching import usage_fetch_for_key

    def fetch(key_id: int) -> str:
        return usage_fetch_for_key(api_key_id=key_id).status

    def close(barrier: threading.Barrier) -> None:
        barrier.wait()  # every thread of the pool runs one of these
        connections.close_all()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = list(pool.map(fetch, key_ids))
        barrier = threading.Barrier(threads)
        list(pool.map(close, [barrier] * threads))
    return statuses


def _fetch_in_processes(key_ids: list[int], *, processes: int, concurrency: int) -> list[str]:
    """The keys split over ``processes`` forked worker processes (Celery's prefork pool),
    ``concurrency // processes`` threads each: never more than ``concurrency`` at once."""
    from django.db import connections

    if processes == 1:
        return _fetch_all(key_ids, concurrency)
    connections.close_all()  # a forked child must not share the parent's connection
    chunks = [key_ids[n::processes] for n in range(processes)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        done = pool.map(_fetch_all, chunks, [concurrency // processes] * processes)
        return [status for statuses in done for status in statuses]


def bench_fetch(
    *, keys: int, latency: float, concurrency: int, processes: int, sample: int, refetch: bool
) -> dict[str, bool]:
    """Part (a). Returns its target checks."""
    from keys.models import ApiKey
    from tests.fakes.openai_admin import FakeOpenAIAdmin
    from usage.models import UsageBucket
    from usage.services.fetching import usage_fetch_for_key

    secrets = [_admin_secret(n) for n in range(keys)]
    fake = FakeOpenAIAdmin(set(secrets)).start()
    try:
        from django.conf import settings

        settings.OPENAI_BASE_URL = fake.base_url
        now = datetime.now(UTC)
        for hours in (3, 20, 30):  # three hours of the organisation's usage to store
            fake.add_usage(now - timedelta(hours=hours), model="gpt-4o-mini", input_tokens=100)
        owners = _users(keys, "fetch")
        ids = []
        for owner, secret in zip(owners, secrets, strict=True):
            key = ApiKey(owner=owner, provider="openai", name="org admin", secret=secret)
            key.masked_key = f"{secret[:4]}…{secret[-4:]}"
            key.save()
            ids.append(key.pk)
        if refetch:
            # Every key fetched once already (untimed, no latency); since then usage came
            # in the current hour, as between two scheduled fetches 15 minutes apart.
            _fetch_in_processes(ids, processes=processes, concurrency=concurrency)
            fake.add_usage(now, model="gpt-4o-mini", input_tokens=50)
        fake.delay = latency

        # Measured sequential baseline on the first keys, then the rest concurrently. The
        # first fetch is not measured: it imports the SDK and builds the TLS context, once
        # per process (the forked workers inherit them), which would swell the CPU per key.
        statuses = [usage_fetch_for_key(api_key_id=ids[0]).status]
        before = len(fake.requests)
        started, cpu = time.perf_counter(), time.process_time()
        statuses += [usage_fetch_for_key(api_key_id=key_id).status for key_id in ids[1:sample]]
        sequential = time.perf_counter() - started
        measured = len(ids[1:sample])
        cpu_per_key = (time.process_time() - cpu) / max(measured, 1)
        sample_requests = len(fake.requests) - before

        rest = ids[sample:]
        before = len(fake.requests)
        fake.max_in_flight = 0  # the concurrent run's own
        load = os.getloadavg()[0]
        started = time.perf_counter()
        statuses += _fetch_in_processes(rest, processes=processes, concurrency=concurrency)
        wall = time.perf_counter() - started
        requests = len(fake.requests) - before
        in_flight = fake.max_in_flight
    finally:
        fake.stop()
    failed = sum(status != "ok" for status in statuses)
    estimate = requests * latency
    measured_per_key = sequential / max(measured, 1)
    print(
        f"\n(a) {'re-fetch' if refetch else 'first fetch'} for {keys} OpenAI admin keys, "
        f"{latency * 1000:.0f} ms per request, "
        f"{UsageBucket.objects.count()} buckets stored, {failed} failed"
    )
    print(
        f"  sequential, measured on {measured} keys: {sequential:6.2f} s "
        f"({measured_per_key * 1000:.0f} ms per key, {sample_requests} requests)"
    )
    print(
        f"  concurrent, limit {concurrency} ({processes} process(es) x "
        f"{concurrency // processes} threads), {len(rest)} keys: {wall:6.2f} s "
        f"({requests} requests, at most {in_flight} in flight at once)"
    )
    print(f"  sequential estimate (requests x latency): {estimate:6.2f} s")
    # The threads of a process share one interpreter: it cannot finish fetches faster than
    # one core does them, whatever the limit; processes add cores, up to the machine's (and
    # on a busy machine they get less than whole cores).
    cpu_bound = cpu_per_key * len(rest)
    cores = min(processes, os.cpu_count() or 1)
    print(
        f"  CPU per fetch (Kay, the SDK, the fake; one process): {cpu_per_key * 1000:.1f} ms, "
        f"so {cpu_bound:5.2f} s of CPU for the run over {cores} core(s); "
        f"load average {load:.1f} on {os.cpu_count()} cores when it started"
    )
    by_cpu = cores * estimate / cpu_bound if cpu_bound else float("inf")
    ceiling = min(concurrency, by_cpu)
    print(
        f"  ceiling: {concurrency}x by the limit, {by_cpu:.1f}x by {cores} idle core(s), "
        f"so at best {estimate / ceiling:6.2f} s ({ceiling:.1f}x)"
    )
    ratio = estimate / wall
    measured_ratio = measured_per_key * len(rest) / wall
    print(f"  speed-up vs estimate: {ratio:.1f}x   vs measured sequential: {measured_ratio:.1f}x")
    return {
        f"fan-out >= 10x faster than sequential:     {ratio:.1f}x": ratio >= 10 and not failed,
        f"requests in flight within the limit {concurrency}: {in_flight}": (
            in_flight <= concurrency
        ),
    }


def _fill_month(
    *, owner_id: int, buckets: int, key_ids: list[int], project_ids: list[int | None]
) -> int:
    """``buckets`` hourly buckets over the month: hour x model x provider key id, some
    attributed to stored keys and projects. One INSERT … SELECT generate_series."""
    from django.db import connection

    from usage.models import UsageBucket

    hours = MONTH_DAYS * 24
    start = datetime.combine(MONTH, datetime.min.time(), tzinfo=UTC)
    stored = len(key_ids)
    meta = UsageBucket._meta
    # A million rows load several times faster into a table without its own indexes,
    # built once afterwards (as a restore does).
    with connection.schema_editor() as editor:
        for constraint in meta.constraints:
            editor.remove_constraint(UsageBucket, constraint)
        for index in meta.indexes:
            editor.remove_index(UsageBucket, index)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO usage_usagebucket (
                owner_id, api_key_id, project_id, source, provider, model,
                external_project_id, external_key_id, bucket_start, granularity,
                input_tokens, output_tokens, cached_tokens, requests, cost_micros,
                cost_source, updated_at)
            SELECT %(owner)s,
                   CASE WHEN k < %(stored)s THEN (%(key_ids)s::bigint[])[k + 1] END,
                   CASE WHEN k < %(stored)s THEN (%(project_ids)s::bigint[])[k + 1] END,
                   'openai_admin', 'openai', 'gpt-bench-' || m,
                   'proj_' || (k %% 7), 'key_' || k,
                   %(start)s::timestamptz + h * interval '1 hour', 'hour',
                   1000 + (i %% 997), 200 + (i %% 101), (i %% 301), 1 + (i %% 5),
                   500 + (i %% 9973), 'provider', now()
            FROM (
                SELECT i, i %% %(hours)s AS h, (i / %(hours)s) %% %(models)s AS m,
                       i / (%(hours)s * %(models)s) AS k
                FROM generate_series(0, %(last)s) AS i
            ) AS g
            """,
            {
                "owner": owner_id,
                "stored": stored,
                "key_ids": key_ids,
                "project_ids": project_ids,
                "start": start,
                "hours": hours,
                "models": MODELS,
                "last": buckets - 1,
            },
        )
    with connection.schema_editor() as editor:
        for constraint in meta.constraints:
            editor.add_constraint(UsageBucket, constraint)
        for index in meta.indexes:
            editor.add_index(UsageBucket, index)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usagebucket")
    return buckets


def _direct_scan(owner: Any, start: date, end: date) -> tuple[Any, ...]:
    """What the day summary computes, straight from the buckets (no rollup): the series
    per day and model, the breakdown per key and project, and the previous period."""
    from django.db.models import Sum
    from django.db.models.functions import TruncDate

    from usage.models import UsageBucket
    from usage.selectors import FIGURES

    def period(first: date, last: date) -> Any:
        return UsageBucket.objects.filter(
            owner=owner,
            bucket_start__gte=datetime.combine(first, datetime.min.time(), tzinfo=UTC),
            bucket_start__lt=datetime.combine(
                last + timedelta(days=1), datetime.min.time(), tzinfo=UTC
            ),
        )

    sums = {name: Sum(name) for name in FIGURES}
    current = period(start, end)
    series = list(
        current.annotate(day=TruncDate("bucket_start", tzinfo=UTC))
        .values("day", "provider", "model")
        .annotate(**sums)
        .order_by()
    )
    keys = list(
        current.values("api_key_id", "api_key__name", "project_id", "project__name")
        .annotate(**sums)
        .order_by()
    )
    days = (end - start).days + 1
    previous = period(start - timedelta(days=days), start - timedelta(days=1)).aggregate(**sums)
    return series, keys, previous


def bench_summary(*, buckets: int, runs: int) -> dict[str, bool]:
    """Part (b). Returns its target checks."""
    from django.db import connection, transaction

    from keys.models import ApiKey, Project
    from usage.models import Source, UsageDaily
    from usage.selectors import usage_summary
    from usage.services.rollup import owner_lock, rollup_rewrite

    (owner,) = _users(1, "month")
    projects = [Project.objects.create(owner=owner, name=f"Project {n}") for n in range(3)]
    stored = []
    for n in range(10):
        key = ApiKey(
            owner=owner,
            provider="openai",
            name=f"app key {n}",
            secret=f"sk-proj-BenchAppKey{n:04d}aaaaaaaaaaaaaaaaaaaaaaaaaaaaWx9z",
            project=projects[n % 3],
            masked_key="sk-p…Wx9z",
        )
        key.save()
        stored.append(key)
    started = time.perf_counter()
    _fill_month(
        owner_id=owner.pk,
        buckets=buckets,
        key_ids=[k.pk for k in stored],
        project_ids=[k.project_id for k in stored],
    )
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        owner_lock(owner.pk)
        rollup_rewrite(
            owner_id=owner.pk,
            source=Source.OPENAI_ADMIN,
            days=[MONTH + timedelta(days=d) for d in range(MONTH_DAYS)],
            pairs=[("openai", f"gpt-bench-{m}") for m in range(MODELS)],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE usage_usagedaily")
    rolled = time.perf_counter() - started
    daily_rows = UsageDaily.objects.filter(owner=owner).count()
    print(
        f"\n(b) one user's month: {buckets:,} hourly buckets inserted in {filled:.1f} s, "
        f"rollup of {daily_rows:,} daily rows built in {rolled:.1f} s"
    )
    end = MONTH + timedelta(days=MONTH_DAYS - 1)

    def summary() -> Any:
        return usage_summary(owner=owner, start=MONTH, end=end, granularity="day")

    first = summary()
    scan = _direct_scan(owner, MONTH, end)
    # The same answer both ways: the rollup is the buckets summed.
    assert first.totals.input_tokens == sum(row["input_tokens"] for row in scan[1])
    with_rollup = []
    for _ in range(runs):
        started = time.perf_counter()
        summary()
        with_rollup.append(time.perf_counter() - started)
    direct = []
    for _ in range(max(3, runs // 6)):  # each takes seconds: fewer runs
        started = time.perf_counter()
        _direct_scan(owner, MONTH, end)
        direct.append(time.perf_counter() - started)
    print(f"  usage_summary(day), rollup: {_ms(with_rollup)}   ({len(with_rollup)} runs)")
    print(f"  direct scan of the buckets: {_ms(direct)}   ({len(direct)} runs)")
    ratio = statistics.median(direct) / statistics.median(with_rollup)
    print(f"  rollup / direct scan p50: {ratio:.0f}x faster")
    p50 = statistics.median(with_rollup) * 1000
    return {f"month summary p50 with the rollup < 150 ms: {p50:.1f} ms": p50 < 150}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("a", "b"), help="run only (a) fetch or (b) summary")
    parser.add_argument("--keys", type=int, default=500, help="admin keys to fetch")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per fake request")
    parser.add_argument("--sample", type=int, default=20, help="keys fetched one by one first")
    parser.add_argument(
        "--concurrency", type=int, help="fetches at once (default USAGE_FETCH_CONCURRENCY)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="worker processes sharing --concurrency"
    )
    parser.add_argument(
        "--refetch",
        action="store_true",
        help="(a) times the scheduled re-fetch (each key fetched once before) instead",
    )
    parser.add_argument("--buckets", type=int, default=1_000_000, help="buckets in the month")
    parser.add_argument("--runs", type=int, default=30, help="timed summaries")
    args = parser.parse_args()
    if args.latency <= 0:
        parser.error("--latency must be more than 0: the estimate is requests x latency")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    for name in ("httpx", "httpx2", "usage", "keys"):  # one line per request or bucket
        logging.getLogger(name).setLevel(logging.ERROR)
    connection.settings_dict["TEST"]["NAME"] = (
        str(ROOT / "var" / f"bench-usage-{os.getpid()}.sqlite3")
        if connection.vendor == "sqlite"
        else f"{connection.settings_dict['NAME']}_bench_usage_{os.getpid()}"
    )
    real_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    concurrency = args.concurrency or settings.USAGE_FETCH_CONCURRENCY
    if not 1 <= args.processes <= concurrency:
        parser.error("--processes must be between 1 and the concurrency")
    print(f"Kay usage benchmark ({connection.vendor})")
    checks: dict[str, bool] = {}
    try:
        if args.part in (None, "a"):
            checks |= bench_fetch(
                keys=args.keys,
                latency=args.latency,
                concurrency=concurrency,
                processes=args.processes,
                sample=args.sample,
                refetch=args.refetch,
            )
        if args.part in (None, "b") and connection.vendor == "postgresql":
            checks |= bench_summary(buckets=args.buckets, runs=args.runs)
        elif args.part in (None, "b"):
            print("\n(b) skipped: a million buckets needs PostgreSQL (set DATABASE_URL)")
    finally:
        connection.creation.destroy_test_db(real_name, verbosity=0)
    print("\nTargets:")
    for text, ok in checks.items():
        print(f"  {text}  {'OK' if ok else 'MISSED'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
