"""core.http.http_client: the one way Kay builds a client for an outside service."""

import httpx
import respx

from core.http import http_client


@respx.mock
def test_a_redirect_is_not_followed_so_credentials_stay_with_the_service():
    first = respx.get("https://api.example.com/token").respond(
        302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    elsewhere = respx.get("http://169.254.169.254/latest/meta-data/").respond(200)
    with http_client(timeout=5, headers={"Authorization": "Bearer secret"}) as client:
        response = client.get("https://api.example.com/token")
    assert response.status_code == 302
    assert first.called and not elsewhere.called


@respx.mock
def test_paths_are_sent_under_the_base_url():
    route = respx.get("https://openrouter.example/api/v1/models").respond(200, json={"data": []})
    with http_client(
        timeout=httpx.Timeout(5), base_url="https://openrouter.example/api/v1", connections=32
    ) as client:
        assert client.get("/models").json() == {"data": []}
    assert route.called
