from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import views as core_views

api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("", core_views.root, name="root"),
    path("healthz", core_views.healthz, name="healthz"),
    path("health", core_views.HealthApi.as_view(), name="health"),
    # Each app owns its paths (pages under /dashboard/<section>/, APIs under /api/).
    path("", include("accounts.urls")),
    path("", include("keys.urls")),
    path("", include("connections.urls")),
    path("", include("models_catalog.urls")),
    path("", include("usage.urls")),
    path("", include("assistant.urls")),
    path("", include("billing.urls")),
    # Section shells last, so an app's own /dashboard/<section>/ pages win.
    path("dashboard/", include("dashboard.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
