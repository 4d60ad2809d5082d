"""Key-fetch benchmark: POST /api/keys/fetch against a trivial authenticated endpoint.

    .venv/bin/python bench/keys_fetch.py [--users 1000] [--keys-per-user 5] [--duration 8]

Starts the app under gunicorn on 127.0.0.1 with PostgreSQL when one answers (a throwaway
database ``kay_bench_keys_<pid>`` next to ``DATABASE_URL``, or postgres://kay:kay@127.0.0.1/kay;
SQLite in var/ otherwise) and Redis for the cache when one answers. Loads users x keys
(encrypted like real ones), then, in one run and with the same client concurrency,
alternates timed rounds of

* ``POST /api/keys/fetch`` (Bearer SERVER_SECRET_KEY, a random user and provider each time)
* ``GET /api/me`` with a session cookie (the trivial authenticated JSON endpoint)

and prints requests/s, p50 and p99 of each, their ratio, and the number of SQL queries
one fetch costs (counted in-process through the same view). Targets (issue 3): fetch
throughput ≥ 0.7 x the trivial endpoint's, at most 3 queries per fetch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from harness import answers, drop_database, free_port, percentile, pick_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROVIDERS = ["openai", "anthropic", "gemini", "openrouter", "exa"]
# One database per run: two runs on one server must not drop each other's data mid-run.
BENCH_DB = f"kay_bench_keys_{os.getpid()}"


# --- infrastructure ------------------------------------------------------------------------


def bench_environment(database_url: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "DEBUG": "false",  # no query log in memory, production code paths
        "APP_URL": "https://127.0.0.1",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "KEYS_FETCH_RATE": "100000000/min",
        "API_USER_RATE": "100000000/min",
        "API_ANON_RATE": "100000000/min",
    }
    redis_url = os.environ.get("REDIS_URL", "") or "redis://127.0.0.1:6379/0"
    parsed = urlparse(redis_url)
    if answers(parsed.hostname or "", parsed.port or 6379):
        env["REDIS_URL"] = urlunparse(parsed._replace(path="/13"))
    else:
        env["REDIS_URL"] = ""
    return env


# --- data -----------------------------------------------------------------------------------


def load_data(users: int, keys_per_user: int) -> list[str]:
    """Create users and keys; return session cookies for the trivial endpoint."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User
    from keys.models import ApiKey
    from keys.services import mask_secret

    password = make_password(None)
    people = User.objects.bulk_create(
        [User(email=f"bench{i}@example.com", password=password) for i in range(users)],
        batch_size=1000,
    )
    rows = []
    for user in people:
        for n in range(keys_per_user):
            provider = PROVIDERS[n % len(PROVIDERS)]
            secret = f"sk-bench-{user.pk:06d}-{n}-" + os.urandom(16).hex()
            rows.append(
                ApiKey(
                    owner=user,
                    provider=provider,
                    name=f"{provider} {n}",
                    secret=secret,
                    masked_key=mask_secret(secret),
                    is_default=n < len(PROVIDERS),
                    status="valid",
                )
            )
    ApiKey.objects.bulk_create(rows, batch_size=1000)
    cookies = []
    for user in people[:50]:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


def queries_per_fetch(user_ids: list[int], provider: str) -> int:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {settings.SERVER_SECRET_KEY}"}
    body = {"user_id": user_ids[0], "provider": provider}
    client.post("/api/keys/fetch", body, content_type="application/json", secure=True, **headers)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(
            "/api/keys/fetch", body, content_type="application/json", secure=True, **headers
        )
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


# --- load -----------------------------------------------------------------------------------


def _worker(args: tuple) -> tuple[list[float], dict[int, int]]:
    import threading

    import httpx

    base, kind, seconds, threads, user_ids, providers, cookies, secret = args
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run() -> None:
        rng = random.Random()
        mine: list[float] = []
        codes: dict[int, int] = {}
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                if kind == "fetch":
                    response = client.post(
                        "/api/keys/fetch",
                        json={"user_id": rng.choice(user_ids), "provider": rng.choice(providers)},
                        headers={"Authorization": f"Bearer {secret}"},
                    )
                else:
                    response = client.get("/api/me", headers={"Cookie": rng.choice(cookies)})
                mine.append(time.perf_counter() - start)
                codes[response.status_code] = codes.get(response.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies, statuses


def measure(
    base: str,
    kind: str,
    seconds: float,
    procs: int,
    threads: int,
    user_ids: list[int],
    providers: list[str],
    cookies: list[str],
    secret: str,
) -> tuple[list[float], dict[int, int], float]:
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with ctx.Pool(procs) as pool:
        parts = pool.map(
            _worker, [(base, kind, seconds, threads, user_ids, providers, cookies, secret)] * procs
        )
    elapsed = time.perf_counter() - started
    latencies = [value for part in parts for value in part[0]]
    statuses: dict[int, int] = {}
    for _, codes in parts:
        for code, count in codes.items():
            statuses[code] = statuses.get(code, 0) + count
    return latencies, statuses, max(elapsed, seconds)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--keys-per-user", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per endpoint")
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--client-threads", type=int, default=4)
    args = parser.parse_args()
    if args.keys_per_user < 1:
        parser.error("--keys-per-user must be at least 1 (each fetch asks for a stored key)")

    database_url, admin_url = pick_database(BENCH_DB)
    env = bench_environment(database_url)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    engine = "PostgreSQL" if admin_url else "SQLite"
    print(f"database: {engine}   cache: {'Redis' if env['REDIS_URL'] else 'database table'}")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    server = None
    try:
        call_command("migrate", verbosity=0, interactive=False)
        if not env["REDIS_URL"]:
            call_command("createcachetable", verbosity=0)
        started = time.perf_counter()
        cookies = load_data(args.users, args.keys_per_user)
        from keys.models import ApiKey

        print(
            f"loaded {args.users} users x {args.keys_per_user} keys "
            f"({ApiKey.objects.count()} encrypted rows) in {time.perf_counter() - started:.1f} s"
        )
        user_ids = list(ApiKey.objects.values_list("owner_id", flat=True).distinct())
        # The providers every user has a key of (the first keys_per_user of the list).
        providers = PROVIDERS[: args.keys_per_user]
        fetch_queries = queries_per_fetch(user_ids, providers[0])
        connections.close_all()

        port = free_port()
        log = open(ROOT / "var" / "bench-keys-gunicorn.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                "4",
                "--keep-alive",
                "30",
            ],
            cwd=ROOT,
            env={**os.environ},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while not answers("127.0.0.1", port):
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit("gunicorn did not start; see var/bench-keys-gunicorn.log")
            time.sleep(0.2)
        common = (
            args.client_procs,
            args.client_threads,
            user_ids,
            providers,
            cookies,
            settings.SERVER_SECRET_KEY,
        )
        measure(base, "trivial", 1.5, *common)  # warm up both paths
        measure(base, "fetch", 1.5, *common)
        results: dict[str, dict] = {
            kind: {"lat": [], "codes": {}, "time": 0.0} for kind in ("trivial", "fetch")
        }
        for _ in range(args.rounds):
            for kind in ("trivial", "fetch"):
                lat, codes, elapsed = measure(base, kind, args.duration, *common)
                results[kind]["lat"] += lat
                results[kind]["time"] += elapsed
                for code, count in codes.items():
                    results[kind]["codes"][code] = results[kind]["codes"].get(code, 0) + count
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        connections.close_all()
        drop_database(admin_url, BENCH_DB)

    print(
        f"gunicorn: {args.workers} gthread workers x 4 threads; client: "
        f"{args.client_procs} processes x {args.client_threads} keep-alive connections"
    )
    print(f"{'endpoint':<26}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    rates = {}
    for kind, label in (("trivial", "GET /api/me (session)"), ("fetch", "POST /api/keys/fetch")):
        data = results[kind]
        rates[kind] = len(data["lat"]) / data["time"]
        print(
            f"{label:<26}{len(data['lat']):>10}{rates[kind]:>10.0f}"
            f"{percentile(data['lat'], 0.5) * 1000:>9.1f}"
            f"{percentile(data['lat'], 0.99) * 1000:>9.1f}  {data['codes']}"
        )
    ratio = rates["fetch"] / rates["trivial"]
    ok_codes = set(results["fetch"]["codes"]) == {200} and set(results["trivial"]["codes"]) == {200}
    print(
        f"ratio fetch/trivial: {ratio:.2f}  (target >= 0.70: {'met' if ratio >= 0.7 else 'MISSED'})"
    )
    print(
        f"queries per fetch: {fetch_queries}  (target <= 3: "
        f"{'met' if fetch_queries <= 3 else 'MISSED'})"
    )
    print(f"median latency: fetch {statistics.median(results['fetch']['lat']) * 1000:.1f} ms")
    if not ok_codes:
        print("some requests failed; see the statuses above")
    return 0 if ok_codes and ratio >= 0.7 and fetch_queries <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
