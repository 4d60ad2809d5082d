import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from core.asgi_handler import KayASGIHandler  # noqa: E402 (after setup)

# Django's handler, with its own middleware's I/O-free hooks on the event loop and each
# request's sync code on a reused thread.
application = KayASGIHandler()
