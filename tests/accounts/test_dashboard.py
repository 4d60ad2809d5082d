import pytest

from tests.helpers.queries import assert_flat_queries

pytestmark = pytest.mark.django_db

SECTIONS = [
    "Overview",
    "Keys",
    "Projects",
    "Usage",
    "Models",
    "Connections",
    "Assistant",
    "Billing",
    "API tokens",
]


def test_dashboard_requires_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_overview_has_every_section_and_next_steps(alice_browser):
    html = alice_browser.get("/dashboard/").content.decode()
    for label in SECTIONS:
        assert f"</span>{label}</a>" in html
    assert "Admin</a>" not in html
    assert "Get started" in html
    assert 'aria-current="page"' in html


def test_staff_see_the_admin_link(client, staff):
    client.force_login(staff)
    assert "Admin</a>" in client.get("/dashboard/").content.decode()


def test_every_nav_link_opens_a_page(alice_browser):
    from dashboard.navigation import SECTIONS as NAV

    for section in NAV:
        assert alice_browser.get(section.url).status_code == 200, section.slug


def test_the_checklist_follows_what_exists_however_it_was_made(alice_browser, alice):
    from accounts.tokens import api_token_create
    from tests.connections.factories import ConnectionFactory
    from tests.keys.factories import ApiKeyFactory, ProjectFactory

    def done_steps():
        html = alice_browser.get("/dashboard/").content.decode()
        return html.count('class="done"')

    assert done_steps() == 0
    project = ProjectFactory(owner=alice)
    assert done_steps() == 1
    ApiKeyFactory(owner=alice, project=project)
    assert done_steps() == 2
    ConnectionFactory(user=alice, service="jira")
    assert done_steps() == 3
    api_token_create(user=alice, name="cli")
    html = alice_browser.get("/dashboard/").content.decode()
    assert html.count('class="done"') == 4
    assert "You are set up" in html


def test_the_checklist_reads_a_fixed_number_of_queries(alice_browser, alice):
    from tests.keys.factories import ApiKeyFactory, ProjectFactory

    def add_row():
        ApiKeyFactory(owner=alice, project=ProjectFactory(owner=alice))

    assert_flat_queries(alice_browser, "/dashboard/", add_row, at_most=12)


def test_unknown_section_is_404(alice_browser):
    assert alice_browser.get("/dashboard/nothing-here/").status_code == 404


def test_no_asset_comes_from_another_host(alice_browser):
    html = alice_browser.get("/dashboard/").content.decode()
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html


def test_another_users_things_tick_no_step_of_the_checklist(alice_browser, bob):
    from accounts.tokens import api_token_create, cli_session_start
    from tests.connections.factories import ConnectionFactory
    from tests.keys.factories import ApiKeyFactory, ProjectFactory

    ApiKeyFactory(owner=bob, project=ProjectFactory(owner=bob))
    ConnectionFactory(user=bob, service="jira")
    api_token_create(user=bob, name="cli")
    cli_session_start(user=bob, origin="device")
    assert alice_browser.get("/dashboard/").content.decode().count('class="done"') == 0
