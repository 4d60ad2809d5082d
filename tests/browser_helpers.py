"""Steps shared by browser tests."""

from django.core import mail

from tests.conftest import PASSWORD


def login(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url("**/dashboard/")


def last_email_link() -> str:
    body = mail.outbox[-1].body
    return next(word for word in body.split() if word.startswith("http"))
