"""Give each pytest-xdist worker a Redis database of its own.

pytest-django already gives each worker its own test database; without this the workers
would share one Redis database — cache (throttle counters, ``cache.clear()`` between
tests), Celery broker and the assistant's run events — and clear or consume each other's
keys. Loaded with ``-p`` (pyproject's addopts) so it runs before Django reads its
settings: worker ``gwN`` uses database ``N + 1`` of the same server, leaving database 0 to
a developer's ``make run``. Subprocesses a test starts (Celery workers) inherit the
changed ``REDIS_URL``.
"""

import os
from urllib.parse import urlsplit, urlunsplit


def _per_worker(url: str, worker: str) -> str:
    number = int(worker.removeprefix("gw")) + 1
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if os.environ.get("REDIS_URL") and _worker.startswith("gw"):
    os.environ["REDIS_URL"] = _per_worker(os.environ["REDIS_URL"], _worker)
