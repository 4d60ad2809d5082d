"""URLs of the usage app (pages under /dashboard/, API under /api/)."""

from django.urls import path

from usage import views

app_name = "usage"

urlpatterns = [
    # Pages
    path("dashboard/usage/", views.usage_page, name="page"),
    path("dashboard/usage.csv", views.usage_csv_download, name="csv"),
    path("dashboard/usage/keys/<int:key_id>/fetch/", views.usage_fetch_now, name="fetch_now"),
]
