"""Gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

Gunicorn's access log does not go through Django's logging, so its loggers get the same
redacting filter: request lines carry OAuth codes, states and session ids.
"""

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
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
                log.addFilter(RedactSecretsFilter())
