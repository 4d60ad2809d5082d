"""URLs of the models_catalog app: the Models pages and the models-by-provider API."""

from django.urls import path

from models_catalog import api, views

app_name = "models_catalog"

urlpatterns = [
    path("dashboard/models/", views.model_list, name="list"),
    path(
        "dashboard/models/providers/<slug:slug>/allow/",
        views.provider_allow,
        name="provider-allow",
    ),
    # OpenRouter ids contain slashes (``openai/gpt-4o``), hence <path:>.
    path("dashboard/models/<path:model_id>/allow/", views.model_allow, name="allow"),
    path("dashboard/models/<path:model_id>/prefer/", views.model_prefer, name="prefer"),
    path("dashboard/models/<path:model_id>/", views.model_detail, name="detail"),
    path(
        "api/openrouter/models-by-provider",
        api.CatalogModelsByProviderApi.as_view(),
        name="api-models-by-provider",
    ),
    path("api/models/preferences", api.CatalogPreferencesApi.as_view(), name="api-preferences"),
]
