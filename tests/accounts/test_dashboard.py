import pytest

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
    from core.navigation import SECTIONS as NAV
    from core.navigation import section_url

    for section in NAV:
        assert alice_browser.get(section_url(section)).status_code == 200, section.slug


def test_unknown_section_is_404(alice_browser):
    assert alice_browser.get("/dashboard/nothing-here/").status_code == 404


def test_no_asset_comes_from_another_host(alice_browser):
    html = alice_browser.get("/dashboard/").content.decode()
    assert "http://" not in html.replace("http://testserver", "")
    assert "https://" not in html
