import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from core.inline_middleware import InlineMiddlewareASGIHandler  # noqa: E402 (after setup)

# Django's handler, with its own middleware's I/O-free hooks on the event loop.
application = InlineMiddlewareASGIHandler()
