"""Keys that cannot be the provider's are refused before anything is sent or saved, with a
message naming the expected shape; what a save leaves behind never says "save it anyway"
nor shows a failure in green; masks always show something; the key form's
aria-describedby names elements that exist."""

import importlib
import re

import pytest
from django.apps import apps

from keys.models import ApiKey, KeyAuditEvent
from keys.providers import PROVIDERS, key_format_problem
from keys.services import Origin, api_key_revalidate, mask_secret
from tests.keys.conftest import VALID
from tests.keys.factories import ApiKeyFactory, ProjectFactory

# The same on every database: .ci/run runs it on PostgreSQL only.
pytestmark = pytest.mark.backend_independent

# Keys in each provider's real shape (lengths as issued), beyond the fixtures in VALID.
GOOD = [
    ("openai", "sk-" + "A1b2C3d4" * 6),  # legacy: sk- and 48 letters and digits
    ("openai", "sk-proj-" + "Ab_9-" * 30),
    ("openai", "sk-svcacct-" + "x7Y" * 40),
    ("openai", "sk-admin-" + "Q" * 60),  # admin keys, for usage tracking
    ("openai", "sk-None-" + "z" * 48),
    ("anthropic", "sk-ant-api03-" + "Ab_9-" * 18 + "xyzAA"),
    ("anthropic", "sk-ant-admin01-" + "Zz09_" * 18 + "abcAA"),
    ("gemini", "AIzaSyA1234567890abcdefghijklmnopqrstuv"),
    ("gemini", "AQ.Ab8RN6" + "xY-_.9" * 8),  # the newer authorization keys
    ("openrouter", "sk-or-v1-" + "0123456789abcdef" * 4),
    ("mistral", "aBcD1234eFgH5678iJkL9012mNoP3456"),
    ("groq", "gsk_" + "aB3" * 17 + "x"),
    ("exa", "822D785C-72d9-4030-b588-cdd27cd82dc0"),
    ("copilotkit", "ck_pub_a397a741c7e58200cc65710f5260c027"),
    ("openai_compatible", "x"),
    ("openai_compatible", "local-token=abc/123+~"),
]

# (provider, key, what the message must say). None of them may be sent or stored.
BAD = [
    ("anthropic", "hello", "This is not an Anthropic key: an Anthropic key starts with sk-ant-"),
    ("openai", "hello", "This is not an OpenAI key: an OpenAI key starts with sk-"),
    ("openai", "sk-short", "an OpenAI key starts with sk-"),
    ("openai", VALID["anthropic"], "This looks like an Anthropic key, not an OpenAI key"),
    ("openai", VALID["openrouter"], "This looks like an OpenRouter key, not an OpenAI key"),
    ("anthropic", VALID["openai"], "This looks like an OpenAI key, not an Anthropic key"),
    ("anthropic", "sk-ant-api03-short", "an Anthropic key starts with sk-ant-"),
    ("gemini", "AIza-short", "a Google Gemini key starts with AIza and is 39 characters long"),
    ("gemini", VALID["gemini"] + "x", "a Google Gemini key starts with AIza"),
    ("openrouter", "sk-or-v1-" + "a" * 63, "64 hexadecimal characters"),
    ("openrouter", "sk-or-v1-" + "g" * 64, "64 hexadecimal characters"),
    ("mistral", "aBcD1234eFgH5678iJkL9012mNoP345", "This is not a Mistral key: a Mistral key"),
    ("mistral", "aBcD1234eFgH5678iJkL9012mNoP345_", "a Mistral key is 32 letters and digits"),
    ("groq", "gsk_short", "a Groq key starts with gsk_"),
    ("exa", "not-a-uuid", "an Exa key is a UUID"),
    ("copilotkit", "ck_pub_short", "a CopilotKit key is a Copilot Cloud public API key"),
    ("openai", "sk-proj-" + "a" * 20 + " " + "b" * 20, "printable characters"),
    ("openai", "sk-proj-" + "ключ" * 10, "printable characters"),
    ("openai_compatible", "tökén-1234567890", "printable characters"),
    ("openai_compatible", "two\tparts", "printable characters"),
]


@pytest.mark.parametrize(("slug", "key"), GOOD + [("openai", VALID["openai_admin"])])
def test_keys_in_the_providers_real_shapes_are_accepted(slug, key):
    assert key_format_problem(PROVIDERS[slug], key) == ""


@pytest.mark.parametrize(("slug", "key", "says"), BAD)
def test_a_key_that_cannot_be_the_providers_is_refused_naming_the_shape(slug, key, says):
    problem = key_format_problem(PROVIDERS[slug], key)
    assert says in problem
    assert key not in problem


def test_format_hints_use_the_right_article():
    hints = {slug: provider.hint for slug, provider in PROVIDERS.items()}
    assert hints["anthropic"].startswith("An Anthropic key starts with sk-ant-")
    assert hints["openai"].startswith("An OpenAI key starts with sk-")
    assert hints["exa"].startswith("An Exa key is a UUID")
    assert hints["groq"].startswith("A Groq key starts with gsk_")
    vowels = [p.label for p in PROVIDERS.values() if p.label[0] in "AEIOU"]
    assert not [h for h in hints.values() for label in vowels if re.search(rf"\b[Aa] {label}", h)]


# --- The JSON API --------------------------------------------------------------------------


def _post(client, provider, key, **extra):
    body = {"provider": provider, "name": "mine", "key": key, **extra}
    return client.post("/api/keys", body, format="json")


def test_hello_is_not_saved_as_an_anthropic_key(alice_api, unreachable_providers):
    """The issue's case: Anthropic could not be reached, so "hello" used to be saved as an
    unverified Anthropic key, masked as "…" and made the default."""
    response = _post(alice_api, "anthropic", "hello", is_default=True)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "key_format"
    assert error["fields"]["key"] == [
        "This is not an Anthropic key: an Anthropic key starts with sk-ant- (sk-ant-api03-…, "
        "or sk-ant-admin01-… for usage tracking) and is at least 40 characters long."
    ]
    assert not ApiKey.objects.exists()
    assert not KeyAuditEvent.objects.exists()


@pytest.mark.parametrize(("slug", "key", "says"), BAD)
def test_the_api_refuses_a_bad_shape_without_asking_the_provider(
    alice_api, fake_providers, slug, key, says
):
    extra = {"base_url": fake_providers.base_url + "/v1"} if slug == "openai_compatible" else {}
    response = _post(alice_api, slug, key, **extra)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "key_format" and says in error["fields"]["key"][0]
    assert key not in response.content.decode()
    assert fake_providers.requests == []
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("slug", sorted(set(VALID) - {"openai_admin"}))
def test_the_api_saves_a_good_shape_of_every_provider(alice_api, fake_providers, slug):
    extra = {"base_url": fake_providers.base_url + "/v1"} if slug == "openai_compatible" else {}
    response = _post(alice_api, slug, VALID[slug], **extra)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "valid"


def test_a_copilotkit_key_in_shape_is_saved_unverified(alice_api, fake_providers):
    response = _post(alice_api, "copilotkit", "ck_pub_a397a741c7e58200cc65710f5260c027")
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "unverified"


def test_a_bad_shape_never_takes_the_default(alice_api, alice, fake_providers):
    kept = ApiKeyFactory(owner=alice, provider="anthropic", is_default=True)
    response = _post(alice_api, "anthropic", "hello", is_default=True)
    assert response.status_code == 400
    assert list(ApiKey.objects.filter(is_default=True)) == [kept]


def test_rotating_to_a_bad_shape_keeps_the_old_secret(alice_api, alice, fake_providers):
    key = ApiKeyFactory(owner=alice, provider="groq", secret=VALID["groq"])
    response = alice_api.patch(f"/api/keys/{key.pk}", {"key": VALID["openai"]}, format="json")
    assert response.status_code == 400
    assert (
        "This looks like an OpenAI key, not a Groq key"
        in (response.json()["error"]["fields"]["key"][0])
    )
    assert VALID["openai"] not in response.content.decode()
    assert ApiKey.objects.get(pk=key.pk).get_secret() == VALID["groq"]
    assert fake_providers.requests == []


def test_a_stored_key_of_the_wrong_shape_turns_invalid_without_being_sent(alice, fake_providers):
    """Keys saved before shapes were enforced are marked invalid by the next check."""
    junk = ApiKeyFactory(owner=alice, provider="anthropic", secret="hello", status="unverified")
    check = api_key_revalidate(api_key=junk, origin=Origin("schedule"))
    assert check.status == "invalid" and "This is not an Anthropic key" in check.detail
    assert ApiKey.objects.get(pk=junk.pk).status == "invalid"
    assert fake_providers.requests == []


# --- Pages ---------------------------------------------------------------------------------


def test_the_new_key_page_shows_a_bad_shape_as_an_error_on_the_key(
    alice_browser, unreachable_providers
):
    response = alice_browser.post(
        "/dashboard/keys/new/", {"provider": "anthropic", "name": "x", "key": "hello"}
    )
    page = response.content.decode()
    assert response.status_code == 400
    error = re.search(r'<ul class="errorlist" id="id_key_error"><li>(.*?)</li>', page)
    assert error and error.group(1).startswith("This is not an Anthropic key: an Anthropic key")
    assert "alert-success" not in page and "alert-warning" not in page
    assert 'value="hello"' not in page
    assert not ApiKey.objects.exists()


def test_the_check_button_shows_a_bad_shape_in_red(alice_browser, fake_providers):
    response = alice_browser.post(
        "/dashboard/keys/check/", {"provider": "exa", "name": "x", "key": "not-a-uuid"}
    )
    body = response.content.decode()
    assert '<div class="alert alert-error">This is not an Exa key: an Exa key is a UUID' in body
    assert "alert-success" not in body and "alert-warning" not in body
    assert fake_providers.requests == []


def test_onboarding_refuses_a_bad_shape(alice_browser, alice, fake_providers):
    project = ProjectFactory(owner=alice)
    response = alice_browser.post(
        "/dashboard/onboarding/",
        {"action": "key", "provider": "groq", "name": "g", "key": "gsk_x", "project": project.pk},
    )
    assert response.status_code == 400
    assert "This is not a Groq key: a Groq key starts with gsk_" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_before_saving_an_unchecked_key_may_still_be_saved(alice_browser, fake_providers):
    fake_providers.fail_status = 500
    response = alice_browser.post(
        "/dashboard/keys/check/", {"provider": "openai", "name": "x", "key": VALID["openai"]}
    )
    body = response.content.decode()
    assert "alert-warning" in body and "You can still save it" in body


def _messages(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<li class="alert alert-(\w+)">(.*?)</li>', page)


def test_after_saving_an_unchecked_key_the_page_shows_only_the_saved_state(
    alice_browser, fake_providers
):
    fake_providers.fail_status = 500
    response = alice_browser.post(
        "/dashboard/keys/new/",
        {"provider": "openai", "name": "prod", "key": VALID["openai"]},
        follow=True,
    )
    page = response.content.decode()
    assert _messages(page) == [
        (
            "warning",
            "Key saved but not verified. Could not check with OpenAI: it answered HTTP 500.",
        )
    ]
    assert "save it anyway" not in page.lower() and "does not look like" not in page
    key = ApiKey.objects.get()
    assert key.status == "unverified"
    assert key.status_detail == "Could not check with OpenAI: it answered HTTP 500."


def test_a_verified_save_is_the_only_green_banner(alice_browser, fake_providers):
    response = alice_browser.post(
        "/dashboard/keys/new/",
        {"provider": "openai", "name": "prod", "key": VALID["openai"]},
        follow=True,
    )
    assert _messages(response.content.decode()) == [("success", "Key saved and verified.")]


def test_an_unchecked_rotation_is_not_green(alice_browser, alice, fake_providers):
    key = ApiKeyFactory(owner=alice, secret=VALID["openai"])
    fake_providers.fail_status = 500
    new_secret = "sk-proj-Rotated00000000000000000000000000Q7q7"
    page = alice_browser.post(
        f"/dashboard/keys/{key.pk}/rotate/", {"key": new_secret}, follow=True
    ).content.decode()
    assert _messages(page) == [
        (
            "warning",
            "Key rotated but not verified. Could not check with OpenAI: it answered HTTP 500.",
        )
    ]


def test_an_unchecked_key_added_in_onboarding_is_not_green(alice_browser, alice, fake_providers):
    project = ProjectFactory(owner=alice)
    fake_providers.fail_status = 500
    page = alice_browser.post(
        "/dashboard/onboarding/",
        {
            "action": "key",
            "provider": "openai",
            "name": "main",
            "key": VALID["openai"],
            "project": project.pk,
        },
        follow=True,
    ).content.decode()
    assert _messages(page) == [
        (
            "warning",
            "Added “main” (sk-p…Wx9z) but not verified. Could not check with OpenAI: "
            "it answered HTTP 500.",
        )
    ]


def test_stored_details_lose_the_save_it_anyway_advice(db):
    migration = importlib.import_module("keys.migrations.0005_status_detail_without_save_anyway")
    stale = "Could not check with OpenAI: the request timed out. You can save it anyway."
    key = ApiKeyFactory(status="unverified", status_detail=stale)
    other = ApiKeyFactory(status_detail="OpenAI accepted this key.")
    migration.drop_suffix(apps, None)
    key.refresh_from_db()
    other.refresh_from_db()
    assert key.status_detail == "Could not check with OpenAI: the request timed out."
    assert other.status_detail == "OpenAI accepted this key."


# --- Masks and accessibility ---------------------------------------------------------------


@pytest.mark.parametrize("length", range(1, 40))
def test_a_mask_always_shows_something_and_at_most_a_third(length):
    secret = "".join(chr(ord("a") + i % 26) for i in range(length))
    mask = mask_secret(secret)
    assert mask != "…" and len(mask) <= 32
    assert len(mask.replace("…", "").replace("•", "")) <= length // 3


def test_a_provider_key_masks_to_its_first_and_last_four():
    assert mask_secret(VALID["openai"]) == "sk-p…Wx9z"
    assert mask_secret("hello") == "•••••"


def _dangling_descriptions(page: str) -> list[str]:
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    named = {i for value in re.findall(r'aria-describedby="([^"]*)"', page) for i in value.split()}
    return sorted(named - ids)


@pytest.mark.parametrize(
    "url", ["/dashboard/keys/new/", "/dashboard/onboarding/?step=2", "/dashboard/keys/{key}/"]
)
def test_every_aria_describedby_names_an_element_on_the_key_pages(alice_browser, alice, url):
    ProjectFactory(owner=alice)
    key = ApiKeyFactory(owner=alice)
    page = alice_browser.get(url.format(key=key.pk)).content.decode()
    assert 'aria-describedby="id_key_helptext"' in page
    assert _dangling_descriptions(page) == []


def test_the_key_field_is_described_by_its_hint_and_its_error(alice_browser, unreachable_providers):
    page = alice_browser.post(
        "/dashboard/keys/new/", {"provider": "anthropic", "name": "x", "key": "hello"}
    ).content.decode()
    assert 'aria-describedby="id_key_helptext id_key_error"' in page
    assert _dangling_descriptions(page) == []
    helptext = re.search(r'id="id_key_helptext">(.*?)</span>\s*</div>', page, re.S)
    assert helptext and "An Anthropic key starts with sk-ant-" in helptext.group(1)
