"""URLs of the billing app (pages under /dashboard/, API under /api/)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
