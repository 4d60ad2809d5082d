from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts"


class KayAdminConfig(admin_apps.AdminConfig):
    """Django's admin app with Kay's operator console as the default site."""

    default = False
    default_site = "accounts.admin_site.KayAdminSite"
