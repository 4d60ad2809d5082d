"""Gunicorn settings for production: ``gunicorn -c config/gunicorn.py -k
uvicorn.workers.UvicornWorker config.asgi:application`` (ASGI, so the assistant's async
views wait without holding a worker; ``config.wsgi`` with the default sync workers still
works).

Gunicorn's access log does not go through Django's logging, so its loggers get the same
redacting filter: request lines carry OAuth codes, states and session ids. Uvicorn's
workers log requests through their own loggers (onto gunicorn's handlers): filtered too.
"""

import logging
import os

from gunicorn import glogging

from core.logging import RedactSecretsFilter

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = "-"
logger_class = "config.gunicorn.RedactingLogger"


class RedactingLogger(glogging.Logger):
    def setup(self, cfg):  # type: ignore[no-untyped-def]
        super().setup(cfg)
        uvicorn = [logging.getLogger(name) for name in ("uvicorn.access", "uvicorn.error")]
        for log in (self.error_log, self.access_log, *uvicorn):
            if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
                log.addFilter(RedactSecretsFilter())
