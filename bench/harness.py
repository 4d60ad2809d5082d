"""What the bench scripts share: a throwaway database, free ports, percentiles.

Imported as ``harness`` (``python bench/<name>.py`` puts this folder first on the path)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse, urlunparse


def answers(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def pick_database(name: str) -> tuple[str, str | None]:
    """(DATABASE_URL for the bench, the admin URL to drop it with; None: SQLite).

    A fresh PostgreSQL database ``name`` next to DATABASE_URL when PostgreSQL answers;
    the named database may not exist (a fresh checkout, or a name only tests use), so the
    server's maintenance database can create it just as well. Else a temporary SQLite file."""
    base = os.environ.get("DATABASE_URL", "") or "postgres://kay:kay@127.0.0.1:5432/kay"
    parsed = urlparse(base)
    if parsed.scheme.startswith("postgres") and answers(parsed.hostname or "", parsed.port or 5432):
        import psycopg

        error: Exception | None = None
        for admin in (base, urlunparse(parsed._replace(path="/postgres"))):
            try:
                with psycopg.connect(_libpq(admin), autocommit=True, connect_timeout=2) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    conn.execute(f'CREATE DATABASE "{name}"')
                return urlunparse(parsed._replace(path=f"/{name}")), admin
            except Exception as exc:
                error = exc
        print(f"PostgreSQL not usable ({error.__class__.__name__}: {error}); using SQLite")
    path = Path(tempfile.mkdtemp(prefix="kay-bench-")) / "bench.sqlite3"
    return f"sqlite:///{path}", None


def drop_database(admin_url: str | None, name: str) -> None:
    """Drop what :func:`pick_database` made (nothing for SQLite)."""
    if admin_url is None:
        return
    import psycopg

    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The value ``q`` (0 to 1) of the way up ``values`` sorted (nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
