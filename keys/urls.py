"""URLs of the keys app: the JSON API under /api/ (seed 001 paths, no trailing slash) and
pages under /dashboard/keys/, /dashboard/projects/, /dashboard/onboarding/."""

from django.urls import path

from keys import api, views, views_onboarding

app_name = "keys"

urlpatterns = [
    # API
    path("api/keys", api.ApiKeyCollectionApi.as_view(), name="api-keys"),
    path("api/keys/fetch", api.ApiKeyFetchApi.as_view(), name="api-keys-fetch"),
    path("api/keys/<int:key_id>", api.ApiKeyDetailApi.as_view(), name="api-key"),
    path(
        "api/keys/<int:key_id>/validate", api.ApiKeyValidateApi.as_view(), name="api-key-validate"
    ),
    path("api/keys/<int:key_id>/events", api.ApiKeyEventsApi.as_view(), name="api-key-events"),
    path("api/projects", api.ProjectCollectionApi.as_view(), name="api-projects"),
    path("api/projects/<int:project_id>", api.ProjectDetailApi.as_view(), name="api-project"),
    # Pages
    path("dashboard/keys/", views.key_list, name="list"),
    path("dashboard/keys/new/", views.key_new, name="new"),
    path("dashboard/keys/check/", views.key_check, name="check"),
    path("dashboard/keys/hint/", views.key_hint, name="hint"),
    path("dashboard/keys/<int:key_id>/", views.key_detail, name="detail"),
    path("dashboard/keys/<int:key_id>/edit/", views.key_edit, name="edit"),
    path("dashboard/keys/<int:key_id>/rotate/", views.key_rotate, name="rotate"),
    path("dashboard/keys/<int:key_id>/validate/", views.key_revalidate, name="revalidate"),
    path("dashboard/keys/<int:key_id>/delete/", views.key_delete, name="delete"),
    path("dashboard/projects/", views.project_list, name="project_list"),
    path("dashboard/projects/<int:project_id>/", views.project_detail, name="project_detail"),
    path(
        "dashboard/projects/<int:project_id>/delete/",
        views.project_delete,
        name="project_delete",
    ),
    path("dashboard/onboarding/", views_onboarding.onboarding, name="onboarding"),
]
