"""Real processes for tests (gunicorn, runserver, a Celery worker): run from the repository
with their output in a log file, used once ready, always stopped."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: something answers at ``url`` (whatever the status)."""

    def ready() -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            return False
        return True

    return ready


@contextmanager
def running(
    *args: str,
    log: Path,
    ready: Callable[[], bool],
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python <args>`` from the repository, its output in ``log``, until the block ends.
    The block starts once ``ready()``; a process that exits first, or is not ready within
    ``timeout`` seconds, fails the test with its log."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{' '.join(args)} did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
