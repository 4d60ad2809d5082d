"""Steps shared by connection tests: the CLI's calls and the browser's trip to the fake."""

from urllib.parse import urlsplit

import httpx


def connect(client, service="jira", session_id=None, **extra):
    body = {"session_id": session_id} if session_id else {}
    response = client.post(f"/connections/connect?service={service}", body, format="json", **extra)
    assert response.status_code == 200, response.content
    return response.json()


def consent(authorization_url: str) -> str:
    """What the browser does at the provider: returns the callback path + query."""
    response = httpx.get(authorization_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    return f"{location.path}?{location.query}"


def finish_callback(browser, callback_path: str, action: str = "link"):
    """The browser lands on the callback; a CLI's first connection is then confirmed (or
    cancelled) on the confirmation page. Returns the last response."""
    landed = browser.get(callback_path)
    if landed.status_code == 302 and "/connections/oauth/confirm/" in landed["Location"]:
        confirm_url = landed["Location"]
        page = browser.get(confirm_url)
        if page.status_code == 200 and b'name="action" value="link"' in page.content:
            return browser.post(confirm_url, {"action": action})
        return page
    return landed


def connect_and_consent(client, browser, service="jira", session_id=None, token=None):
    """The CLI starts (with its session token for a signed-in session), the browser
    consents and lands on the callback."""
    started = connect(client, service, session_id, **(bearer(token) if token else {}))
    callback = finish_callback(browser, consent(started["authorization_url"]))
    return started, callback


def first_login(client, browser, service="jira"):
    """Seed steps 1-4: returns the connect body and the completed status body."""
    started, callback = connect_and_consent(client, browser, service)
    assert callback.status_code == 200, callback.content
    status = client.get(f"/auth/status/{started['state']}")
    assert status.status_code == 200, status.content
    return started, status.json()


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
