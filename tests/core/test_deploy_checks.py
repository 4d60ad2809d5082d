"""Deployment configuration seen from a fresh process: `check --deploy` warns about a
non-debug instance without DEPLOY_ENV, and only DEBUG lets a key check reach a private
address (a user's base URL on this machine)."""

import json

import pytest

from core.envfile import new_encryption_key
from tests.core.test_settings import PRODUCTION, _manage
from tests.fakes.providers import FakeProviders

KEY = "local-llm-token-1234567890"

# Check a user's OpenAI-compatible key the way the key form does; print what happened.
CHECK_KEY = """
import json, os
from core.errors import ApplicationError
from keys.providers import PROVIDERS
from django.conf import settings
from core.http import check_base_url
url, key = os.environ["CHECK_URL"], os.environ["CHECK_KEY"]
try:
    check_base_url(url, allow_private=settings.KEYS_ALLOW_PRIVATE_BASE_URLS)
    form = "accepted"
except ApplicationError as exc:
    form = exc.message
print(json.dumps({"form": form, "check": PROVIDERS["openai_compatible"].check(key, url).status}))
"""


@pytest.fixture
def production_env():
    return {**PRODUCTION, "ENCRYPTION_KEYS": new_encryption_key()}


@pytest.fixture
def fake():
    server = FakeProviders({KEY}).start()
    yield server
    server.stop()


def _check_key(env, tmp_path, url):
    result = _manage(
        ["shell", "-c", CHECK_KEY], {**env, "CHECK_URL": url, "CHECK_KEY": KEY}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_warns_when_debug_is_off_and_deploy_env_is_empty(production_env, tmp_path):
    env = {k: v for k, v in production_env.items() if k != "DEPLOY_ENV"}
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "core.W001" in output
    assert "DEPLOY_ENV is empty, so Kay treats this as development" in output


def test_check_deploy_does_not_warn_about_deploy_env_in_development(tmp_path, production_env):
    env = {**production_env, "DEBUG": "true"}
    del env["DEPLOY_ENV"]
    result = _manage(["check", "--deploy"], env, tmp_path)
    assert "core.W001" not in result.stdout + result.stderr


def test_without_debug_a_base_url_on_this_machine_is_refused_and_gets_no_request(
    production_env, tmp_path, fake
):
    """What .env.example, the Dockerfile and docker-compose used to leave: DEBUG=false and
    no DEPLOY_ENV. The form refuses the address and the check never connects."""
    env = {k: v for k, v in production_env.items() if k != "DEPLOY_ENV"}
    outcome = _check_key(env, tmp_path, fake.base_url + "/v1")
    assert outcome["form"] == "The base URL must use https."
    assert outcome["check"] == "unverified"
    assert fake.requests == []


def test_private_base_urls_cannot_be_turned_on_without_debug(production_env, tmp_path):
    env = {**production_env, "KEYS_ALLOW_PRIVATE_BASE_URLS": "true"}
    result = _manage(["check"], env, tmp_path)
    assert result.returncode != 0
    assert "KEYS_ALLOW_PRIVATE_BASE_URLS=true needs DEBUG=true" in result.stderr


def test_with_debug_a_model_server_on_this_machine_can_be_checked(production_env, tmp_path, fake):
    env = {**production_env, "DEBUG": "true"}
    del env["DEPLOY_ENV"]
    outcome = _check_key(env, tmp_path, fake.base_url + "/v1")
    assert outcome == {"form": "accepted", "check": "valid"}
    assert [r["path"] for r in fake.requests] == ["/v1/models"]
