"""Dashboard pages: keys, projects, onboarding, the overview's onboarding step."""

import itertools

import pytest

from keys.models import ApiKey, KeyAuditEvent, OnboardingSession, Project
from tests.helpers.queries import assert_flat_queries
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory, KeyAuditEventFactory, ProjectFactory


def test_empty_states(alice_browser):
    page = alice_browser.get("/dashboard/keys/").content.decode()
    assert "No keys yet" in page and "Add your first key" in page
    assert "No projects yet" in alice_browser.get("/dashboard/projects/").content.decode()


def test_the_sidebar_links_to_the_key_pages(alice_browser):
    page = alice_browser.get("/dashboard/").content.decode()
    assert 'href="/dashboard/keys/"' in page and 'href="/dashboard/projects/"' in page


def test_list_shows_masks_status_and_filters(alice_browser, alice):
    project = ProjectFactory(owner=alice, name="Chatbot")
    ApiKeyFactory(owner=alice, project=project, name="prod-openai")
    ApiKeyFactory(
        owner=alice,
        provider="anthropic",
        name="claude",
        status="invalid",
        secret="sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaaaa",
    )
    page = alice_browser.get("/dashboard/keys/").content.decode()
    assert "prod-openai" in page and "claude" in page and "sk-p…Wx9z" in page
    assert "Invalid" in page and "rejected at the last check" in page
    filtered = alice_browser.get(f"/dashboard/keys/?project={project.pk}").content.decode()
    assert "prod-openai" in filtered and "claude" not in filtered
    by_provider = alice_browser.get("/dashboard/keys/?provider=anthropic", HTTP_HX_REQUEST="true")
    body = by_provider.content.decode()
    assert "claude" in body and "prod-openai" not in body and "<html" not in body
    none = alice_browser.get("/dashboard/keys/?provider=groq").content.decode()
    assert "No keys match" in none


@pytest.mark.parametrize("url", ["/dashboard/keys/", "/dashboard/projects/"])
def test_list_page_query_count_is_flat(alice_browser, alice, locmem_cache, url):
    rows = itertools.count()

    def add_row():
        # Two in three keys in a project of their own (the first one too), the rest in none.
        project = ProjectFactory(owner=alice) if next(rows) % 3 != 2 else None
        ApiKeyFactory(owner=alice, project=project)

    assert_flat_queries(alice_browser, url, add_row)


def test_a_key_page_query_count_is_flat_in_its_audit_trail(alice_browser, alice, locmem_cache):
    key = ApiKeyFactory(owner=alice)
    assert_flat_queries(
        alice_browser, f"/dashboard/keys/{key.pk}/", lambda: KeyAuditEventFactory(api_key=key)
    )


def test_a_project_page_query_count_is_flat_in_its_keys(alice_browser, alice, locmem_cache):
    project = ProjectFactory(owner=alice)
    assert_flat_queries(
        alice_browser,
        f"/dashboard/projects/{project.pk}/",
        lambda: ApiKeyFactory(owner=alice, project=project),
    )


def test_add_a_key_from_the_dashboard(alice_browser, alice, fake_providers):
    project = ProjectFactory(owner=alice)
    form = alice_browser.get(f"/dashboard/keys/new/?project={project.pk}").content.decode()
    assert "An OpenAI key starts with sk-" in form
    response = alice_browser.post(
        "/dashboard/keys/new/",
        {
            "provider": "openai",
            "name": "prod",
            "project": project.pk,
            "key": VALID["openai"],
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Key saved and verified." in page and "sk-p…Wx9z" in page
    assert VALID["openai"] not in page
    assert ApiKey.objects.get().project == project


def test_a_rejected_key_is_shown_and_not_saved(alice_browser, fake_providers):
    response = alice_browser.post(
        "/dashboard/keys/new/",
        {
            "provider": "openai",
            "name": "prod",
            "key": "sk-proj-wrongwrongwrongwrongwrongwrong",
        },
    )
    assert response.status_code == 400
    assert "OpenAI rejected this key (HTTP 401)" in response.content.decode()
    assert "sk-proj-wrongwrong" not in response.content.decode()  # not echoed back
    assert not ApiKey.objects.exists()


def test_check_button_shows_the_result_without_saving(alice_browser, fake_providers):
    ok = alice_browser.post(
        "/dashboard/keys/check/", {"provider": "openai", "name": "x", "key": VALID["openai"]}
    )
    assert "Valid" in ok.content.decode()
    asked = len(fake_providers.requests)
    bad = alice_browser.post(
        "/dashboard/keys/check/", {"provider": "anthropic", "name": "x", "key": "sk-ant-bad"}
    )
    body = bad.content.decode()
    assert "alert-error" in body and "This is not an Anthropic key" in body
    assert len(fake_providers.requests) == asked, "a key in the wrong format is never sent"
    fake_providers.fail_status = 500
    down = alice_browser.post(
        "/dashboard/keys/check/",
        {"provider": "openrouter", "name": "x", "key": VALID["openrouter"]},
    )
    assert "Could not check" in down.content.decode()
    assert not ApiKey.objects.exists()


def test_hint_follows_the_provider(alice_browser):
    assert "AIza" in alice_browser.get("/dashboard/keys/hint/?provider=gemini").content.decode()


def test_detail_edit_rotate_revalidate_delete(alice_browser, alice, fake_providers):
    key = ApiKeyFactory(owner=alice, secret=VALID["openai"])
    project = ProjectFactory(owner=alice)
    detail = alice_browser.get(f"/dashboard/keys/{key.pk}/").content.decode()
    assert "sk-p…Wx9z" in detail and VALID["openai"] not in detail and "kay:v" not in detail

    alice_browser.post(
        f"/dashboard/keys/{key.pk}/edit/",
        {"name": "renamed", "project": project.pk, "is_default": "on"},
    )
    key.refresh_from_db()
    assert (key.name, key.project, key.is_default) == ("renamed", project, True)

    new_secret = "sk-proj-Rotated00000000000000000000000000Q7q7"
    fake_providers.valid_keys.add(new_secret)
    page = alice_browser.post(
        f"/dashboard/keys/{key.pk}/rotate/", {"key": new_secret}, follow=True
    ).content.decode()
    assert "Key rotated" in page and "sk-p…Q7q7" in page
    assert ApiKey.objects.get(pk=key.pk).get_secret() == new_secret

    fake_providers.valid_keys.discard(new_secret)
    page = alice_browser.post(f"/dashboard/keys/{key.pk}/validate/", follow=True).content.decode()
    assert "rejected this key" in page
    assert ApiKey.objects.get(pk=key.pk).status == "invalid"

    confirm = alice_browser.get(f"/dashboard/keys/{key.pk}/delete/").content.decode()
    assert "Delete “renamed”?" in confirm
    alice_browser.post(f"/dashboard/keys/{key.pk}/delete/")
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    trail = list(
        KeyAuditEvent.objects.filter(owner=alice, key_label__startswith="renamed").values_list(
            "action", flat=True
        )
    )
    assert {"updated", "rotated", "validated", "deleted"} <= set(trail)


def test_audit_trail_shows_time_actor_and_ip(alice_browser, alice, fake_providers):
    response = alice_browser.post(
        "/dashboard/keys/new/",
        {"provider": "openai", "name": "p", "key": VALID["openai"]},
        follow=True,
    )
    page = response.content.decode()
    assert (
        "Audit trail" in page
        and "Created" in page
        and "alice@example.com" in page
        and "127.0.0.1" in page
    )


def test_projects_pages(alice_browser, alice):
    response = alice_browser.post(
        "/dashboard/projects/", {"name": "Website", "description": "chat"}, follow=True
    )
    assert "Project “Website” created." in response.content.decode()
    project = Project.objects.get()
    duplicate = alice_browser.post("/dashboard/projects/", {"name": "website"})
    assert duplicate.status_code == 400 and "already have a project" in duplicate.content.decode()
    ApiKeyFactory(owner=alice, project=project, name="in-project")
    detail = alice_browser.get(f"/dashboard/projects/{project.pk}/").content.decode()
    assert "in-project" in detail and "Move or delete its 1 key first" in detail
    blocked = alice_browser.post(f"/dashboard/projects/{project.pk}/delete/", follow=True)
    assert "Move or delete" in blocked.content.decode()
    ApiKey.objects.all().delete()
    alice_browser.post(f"/dashboard/projects/{project.pk}/delete/")
    assert not Project.objects.exists()


def test_a_refused_rename_or_rotation_shows_on_its_form_and_changes_nothing(
    alice_browser, alice, fake_providers
):
    ProjectFactory(owner=alice, name="Website")
    project = ProjectFactory(owner=alice, name="Chatbot")
    renamed = alice_browser.post(f"/dashboard/projects/{project.pk}/", {"name": "website"})
    assert renamed.status_code == 400 and "already have a project" in renamed.content.decode()
    assert Project.objects.get(pk=project.pk).name == "Chatbot"
    key = ApiKeyFactory(owner=alice, secret=VALID["openai"])
    rejected = "sk-proj-Rejected0000000000000000000000000Q7q7"
    rotated = alice_browser.post(f"/dashboard/keys/{key.pk}/rotate/", {"key": rejected})
    assert rotated.status_code == 400 and "OpenAI rejected this key" in rotated.content.decode()
    assert ApiKey.objects.get(pk=key.pk).get_secret() == VALID["openai"]


# --- onboarding --------------------------------------------------------------------------


def test_overview_offers_onboarding_until_a_key_is_stored(alice_browser, alice):
    page = alice_browser.get("/dashboard/").content.decode()
    assert "Add a provider key" in page and 'href="/dashboard/onboarding/"' in page
    ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))
    page = alice_browser.get("/dashboard/").content.decode()
    assert 'href="/dashboard/onboarding/"' not in page


def test_onboarding_wizard_saves_progress_and_resumes(alice_browser, alice, fake_providers):
    page = alice_browser.get("/dashboard/onboarding/").content.decode()
    assert 'data-step="project"' in page
    alice_browser.post("/dashboard/onboarding/", {"action": "project", "name": "First"})
    session = OnboardingSession.objects.get(user=alice)
    assert (session.current_step, session.progress) == (2, pytest.approx(1 / 3, abs=0.01))
    # The user leaves and comes back: same step.
    assert 'data-step="keys"' in alice_browser.get("/dashboard/onboarding/").content.decode()
    assert alice_browser.post("/dashboard/onboarding/", {"action": "keys_done"}).status_code == 302
    assert OnboardingSession.objects.get(user=alice).current_step == 2  # no key yet: refused
    alice_browser.post(
        "/dashboard/onboarding/",
        {
            "action": "key",
            "provider": "openai",
            "name": "main",
            "key": VALID["openai"],
            "project": Project.objects.get().pk,
        },
    )
    assert ApiKey.objects.get().status == "valid"
    alice_browser.post("/dashboard/onboarding/", {"action": "keys_done"})
    page = alice_browser.get("/dashboard/onboarding/").content.decode()
    assert 'data-step="validate"' in page and "sk-p…Wx9z" in page
    assert 'data-step="keys"' in alice_browser.get("/dashboard/onboarding/?step=2").content.decode()
    alice_browser.post("/dashboard/onboarding/", {"action": "finish"})
    session = OnboardingSession.objects.get(user=alice)
    assert (
        session.completed_at is not None and session.progress == 1.0 and session.current_step == 4
    )
    assert 'data-step="done"' in alice_browser.get("/dashboard/onboarding/").content.decode()


def test_onboarding_starts_at_keys_for_a_user_with_a_project(alice_browser, alice):
    ProjectFactory(owner=alice)
    assert 'data-step="keys"' in alice_browser.get("/dashboard/onboarding/").content.decode()


def test_onboarding_form_errors_rerender(alice_browser, fake_providers):
    response = alice_browser.post("/dashboard/onboarding/", {"action": "project", "name": ""})
    assert response.status_code == 400


def test_deleting_a_user_deletes_their_vault(alice, bob):
    project = ProjectFactory(owner=alice)
    ApiKeyFactory(owner=alice, project=project)
    ApiKeyFactory(owner=alice)
    kept = ApiKeyFactory(owner=bob)
    alice.delete()
    assert list(ApiKey.objects.all()) == [kept]
    assert not Project.objects.exists()
    assert not KeyAuditEvent.objects.filter(owner_id=alice.pk).exists()


def test_error_reports_never_contain_a_pasted_key(alice_browser, monkeypatch):
    """If saving crashes, the report operators get (email/logs) has no key in it."""
    import sys

    from django.core.signals import got_request_exception
    from django.views.debug import ExceptionReporter

    from keys import services

    def boom(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "api_key_create", boom)
    caught = {}

    def grab(sender, request, **kwargs):
        caught["request"], caught["exc"] = request, sys.exc_info()

    got_request_exception.connect(grab)
    alice_browser.raise_request_exception = False
    try:
        secret = "sk-proj-NeverInAnyReport000000000000000000Zz"
        response = alice_browser.post(
            "/dashboard/keys/new/", {"provider": "openai", "name": "x", "key": secret}
        )
    finally:
        got_request_exception.disconnect(grab)
    assert response.status_code == 500
    report = ExceptionReporter(caught["request"], *caught["exc"]).get_traceback_text()
    assert "database on fire" in report
    assert secret not in report
