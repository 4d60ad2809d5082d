"""The operator console: Django's admin, branded, with people and sign-ins in one section.

allauth's email addresses and social accounts and Django's groups are about accounts
too, so they are listed in the Accounts section rather than in three more. Signed-in
people who are not operators get a plain "operators only" page, not a second login form.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

ACCOUNT_APPS = {"accounts", "account", "socialaccount", "auth"}


class KayAdminSite(admin.AdminSite):
    site_header = "Kay operator console"
    site_title = "Kay operator console"
    index_title = "Kay operator console"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)
        merged = [app for app in apps if app["app_label"] in ACCOUNT_APPS]
        if len(merged) < 2:
            return apps
        home = next((app for app in merged if app["app_label"] == "accounts"), merged[0])
        home = {**home, "name": "Accounts"}
        home["models"] = sorted(
            (model for app in merged for model in app["models"]),
            key=lambda model: str(model["name"]).lower(),
        )
        rest = [app for app in apps if app["app_label"] not in ACCOUNT_APPS]
        return [home, *rest]

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not (user.is_active and user.is_staff):
            context = {**self.each_context(request), "title": "Operators only"}
            return TemplateResponse(request, "admin/operators_only.html", context, status=403)
        return super().login(request, extra_context)
