from django.conf import settings
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("security/", views.security_activity, name="security"),
]
if settings.DEBUG:
    # Development-only (seed 000 "fake login"): without DEBUG the route does not exist.
    urlpatterns.append(path("fake-login/", views.fake_login, name="fake_login"))
