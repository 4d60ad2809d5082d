"""Each provider's key check, through its real client (openai SDK or httpx), against fake
provider servers on 127.0.0.1: valid, rejected (401/403), server error (500), timeout.
A user's own base URL is vetted, and the check connects only to the address it vetted."""

import socket
from types import SimpleNamespace

import pytest

from core.errors import ApplicationError
from core.http import check_base_url
from keys.models import ApiKey
from keys.providers import PROVIDERS
from tests.fakes.providers import FakeProviders, tls_files
from tests.keys.conftest import VALID

PUBLIC = "93.184.215.14"  # a global address; tests never let a connection reach it

CHECKED = [
    ("openai", "openai"),
    ("openai", "openai_admin"),
    ("anthropic", "anthropic"),
    ("gemini", "gemini"),
    ("openrouter", "openrouter"),
    ("mistral", "mistral"),
    ("groq", "groq"),
    ("exa", "exa"),
    ("openai_compatible", "openai_compatible"),
]


def run_check(fake, slug, secret):
    provider = PROVIDERS[slug]
    base = provider.base_url(fake.base_url + "/v1" if provider.needs_base_url else "")
    return provider.check(secret, base)


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_valid_key_is_valid(fake_providers, slug, which):
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "valid", result.detail
    assert fake_providers.requests, "the check must reach the provider"


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_rejected_key_is_invalid(fake_providers, slug, which):
    wrong = VALID[which][:-4] + "XXXX"
    result = run_check(fake_providers, slug, wrong)
    assert result.status == "invalid"
    assert wrong not in result.detail


@pytest.mark.parametrize(("slug", "which"), CHECKED)
def test_a_server_error_leaves_the_key_unverified(fake_providers, slug, which):
    fake_providers.fail_status = 500
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "unverified"
    assert "500" in result.detail


@pytest.mark.parametrize(
    ("slug", "which"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("openrouter", "openrouter"),
        ("gemini", "gemini"),
    ],
)
def test_a_timeout_leaves_the_key_unverified(fake_providers, settings, slug, which):
    settings.KEYS_VALIDATION_TIMEOUT = 0.3
    fake_providers.delay = 1.0
    result = run_check(fake_providers, slug, VALID[which])
    assert result.status == "unverified"
    assert "timed out" in result.detail


def test_an_unreachable_provider_leaves_the_key_unverified(unreachable_providers):
    result = PROVIDERS["openrouter"].check(VALID["openrouter"], PROVIDERS["openrouter"].base_url())
    assert result.status == "unverified"


def test_checks_send_the_providers_real_auth_headers(fake_providers):
    run_check(fake_providers, "anthropic", VALID["anthropic"])
    run_check(fake_providers, "gemini", VALID["gemini"])
    run_check(fake_providers, "openrouter", VALID["openrouter"])
    by_path = {r["path"]: r["headers"] for r in fake_providers.requests}
    assert by_path["/v1/models"]["x-api-key"] == VALID["anthropic"]
    assert by_path["/v1/models"]["anthropic-version"] == "2023-06-01"
    assert by_path["/v1beta/models"]["x-goog-api-key"] == VALID["gemini"]
    assert by_path["/api/v1/key"]["authorization"] == f"Bearer {VALID['openrouter']}"


def test_a_project_key_cannot_pass_as_admin_and_admin_keys_use_the_admin_api(fake_providers):
    run_check(fake_providers, "openai", VALID["openai_admin"])
    assert fake_providers.requests[-1]["path"] == "/v1/organization/projects"


def test_copilotkit_is_never_called_and_stays_unverified(fake_providers):
    result = run_check(fake_providers, "copilotkit", "ck_pub_0123456789abcdef0123456789abcdef")
    assert result.status == "unverified"
    assert fake_providers.requests == []


def test_private_base_urls_are_refused_in_production():
    for url in (
        "http://127.0.0.1:8000/v1",
        "https://127.0.0.1/v1",
        "https://localhost/v1",
        "https://10.0.0.5/v1",
        "ftp://example.com",
    ):
        with pytest.raises(ApplicationError):
            check_base_url(url, allow_private=False)


def test_private_base_urls_are_allowed_when_configured():
    assert (
        check_base_url("http://127.0.0.1:8000/v1/", allow_private=True)
        == "http://127.0.0.1:8000/v1"
    )


def test_a_check_does_not_follow_redirects(fake_providers):
    """A public base URL that redirects into the private network must not carry the
    check (and the key) there: the SDK follows redirects unless told not to."""
    fake_providers.redirect_to = fake_providers.base_url + "/v1/models"
    result = PROVIDERS["openai_compatible"].check(
        VALID["openai_compatible"], fake_providers.base_url + "/elsewhere"
    )
    assert result.status == "unverified"
    assert [r["path"] for r in fake_providers.requests] == ["/elsewhere/models"]


@pytest.mark.parametrize("allow_private", [True, False])
def test_base_urls_with_credentials_are_refused(allow_private):
    """The base URL is stored and shown in clear (key page, admin): it must hold no secret."""
    for url in ("https://user:hunter2@llm.example.com/v1", "http://token@127.0.0.1:8000/v1"):
        with pytest.raises(ApplicationError) as caught:
            check_base_url(url, allow_private=allow_private)
        assert "hunter2" not in caught.value.message


# --- A user's base URL: vetting, and connecting only to the vetted address ---------------


@pytest.fixture
def dns(monkeypatch):
    """Scripted DNS for names in ``answers``: each lookup takes the next answer (a list of
    addresses), the last one repeating. Other names resolve as usual."""
    real = socket.getaddrinfo
    state = SimpleNamespace(answers={}, lookups=[])

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in state.answers:
            return real(host, port, *args, **kwargs)
        state.lookups.append(host)
        queue = state.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [info for address in answer for info in real(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return state


@pytest.fixture
def dialled(monkeypatch):
    """Every address a client opens a TCP connection to (the connection still happens)."""
    real = socket.create_connection
    seen = []

    def create_connection(address, *args, **kwargs):
        seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


@pytest.fixture
def tls_server(tmp_path, monkeypatch, settings):
    """A user's https model server whose certificate names only ``llm.rebind.test``;
    the checks trust its CA."""
    files = tls_files(tmp_path, "llm.rebind.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(files[0]))
    fake = FakeProviders(set(VALID.values()), tls=files).start()
    settings.KEYS_VALIDATION_TIMEOUT = 2.0
    yield fake
    fake.stop()


def check_compatible(base_url):
    return PROVIDERS["openai_compatible"].check(VALID["openai_compatible"], base_url)


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        ["64:ff9b::a00:5"],
        ["2002:a00:5::"],
        ["224.0.0.1"],
        ["0.0.0.0"],
        ["240.0.0.1"],
        ["100.64.0.1"],
        [PUBLIC, "10.0.0.5"],
    ],
)
def test_a_host_resolving_to_any_internal_address_is_refused(dns, answer):
    dns.answers["llm.rebind.test"] = [answer]
    with pytest.raises(ApplicationError) as caught:
        check_base_url("https://llm.rebind.test/v1", allow_private=False)
    assert caught.value.fields and "base_url" in caught.value.fields


def test_a_public_host_is_accepted(dns):
    dns.answers["llm.rebind.test"] = [[PUBLIC]]
    assert (
        check_base_url("https://llm.rebind.test/v1/", allow_private=False)
        == "https://llm.rebind.test/v1"
    )


def test_a_check_dials_the_address_it_vetted_and_never_looks_the_host_up_again(
    settings, dns, monkeypatch
):
    """DNS rebinding: the first answer is public, the next one internal. The connection
    must go to the first (vetted) address; a second lookup by the client must not happen."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = False
    dns.answers["llm.rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    dialled = []

    def create_connection(address, *args, **kwargs):
        dialled.append(address)
        raise ConnectionRefusedError  # nothing leaves this machine

    monkeypatch.setattr(socket, "create_connection", create_connection)
    result = check_compatible("https://llm.rebind.test/v1")
    assert dialled == [(PUBLIC, 443)]
    assert dns.lookups == ["llm.rebind.test"]
    assert result.status == "unverified"


def test_a_host_that_turns_internal_after_the_form_vetted_it_gets_no_key(
    alice_api, settings, dns, dialled, tls_server
):
    """The form's lookup sees a public address; by the time the check connects the host
    points at an internal server (here the fake on 127.0.0.1). The key is never sent."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = False
    dns.answers["llm.rebind.test"] = [[PUBLIC], ["127.0.0.1"]]
    response = alice_api.post(
        "/api/keys",
        {
            "provider": "openai_compatible",
            "name": "rebind",
            "key": VALID["openai_compatible"],
            "base_url": f"https://llm.rebind.test:{tls_server.port}/v1",
        },
        format="json",
    )
    assert tls_server.requests == []
    assert dialled == []
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "unverified"
    assert ApiKey.objects.get().status_detail == (
        "Could not check with OpenAI-compatible: the service could not be reached."
    )


def test_a_pinned_https_check_keeps_the_host_name_for_tls_and_the_host_header(
    settings, dns, tls_server
):
    """The check dials the vetted address, yet TLS (SNI, certificate name) and the Host
    header still use the host name: the certificate names no IP address."""
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    dns.answers["llm.rebind.test"] = [["127.0.0.1"]]
    result = check_compatible(f"https://llm.rebind.test:{tls_server.port}/v1")
    assert result.status == "valid", result.detail
    assert tls_server.requests[0]["headers"]["host"] == f"llm.rebind.test:{tls_server.port}"


def test_a_pinned_https_check_still_refuses_a_certificate_for_another_name(
    settings, dns, tls_server
):
    settings.KEYS_ALLOW_PRIVATE_BASE_URLS = True
    dns.answers["llm.other.test"] = [["127.0.0.1"]]
    result = check_compatible(f"https://llm.other.test:{tls_server.port}/v1")
    assert result.status == "unverified"
    assert tls_server.requests == []


def test_a_check_tries_the_next_vetted_address_when_one_cannot_be_reached(
    settings, dns, dialled, fake_providers
):
    dns.answers["llm.rebind.test"] = [["127.0.0.2", "127.0.0.1"]]
    result = check_compatible(f"http://llm.rebind.test:{fake_providers.port}/v1")
    assert result.status == "valid", result.detail
    assert dialled == [("127.0.0.2", fake_providers.port), ("127.0.0.1", fake_providers.port)]
    assert dns.lookups == ["llm.rebind.test"]
