"""Start-up: required settings, production checks, the .env writer and durations."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from core.durations import parse_duration
from core.envfile import ensure_env_file, new_encryption_key
from core.keyring import KeyRingError, parse_key_ring

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "DEPLOY_ENV": "production",
    "APP_URL": "https://kay.example.com",
    "SECRET_KEY": "p" * 20 + "Q9x!Zr$7mT#kL2vB@8nW^4cY&6dF*1gH%3jK",
    "ENCRYPTION_KEYS": "",
    "SERVER_SECRET_KEY": "s" * 40,
    "EMAIL_URL": "smtp+tls://kay:pw@smtp.example.com:587",
    "DATABASE_URL": "sqlite:////tmp/kay-deploy-check.sqlite3",
}


def _manage(args, env, tmp_path):
    dropped = {*PRODUCTION, "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.update(env)
    clean["KAY_ENV_FILE"] = str(tmp_path / "absent.env")
    clean["KAY_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def production_env():
    return {**PRODUCTION, "ENCRYPTION_KEYS": new_encryption_key()}


def test_check_deploy_is_clean_with_production_settings(production_env, tmp_path):
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], production_env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY is not set"),
        ("ENCRYPTION_KEYS", "ENCRYPTION_KEYS is empty"),
        ("SERVER_SECRET_KEY", "SERVER_SECRET_KEY is not set"),
        ("APP_URL", "APP_URL is not set"),
        ("EMAIL_URL", "EMAIL_URL is not set"),
    ],
)
def test_a_missing_required_setting_fails_start_up_naming_it(
    production_env, tmp_path, missing, message
):
    env = {k: v for k, v in production_env.items() if k != missing}
    result = _manage(["check"], env, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_plain_http_app_url_is_refused_in_production(production_env, tmp_path):
    result = _manage(["check"], {**production_env, "APP_URL": "http://kay.example.com"}, tmp_path)
    assert result.returncode != 0
    assert "APP_URL must use https" in result.stderr


def test_a_malformed_encryption_key_fails_start_up(production_env, tmp_path):
    result = _manage(["check"], {**production_env, "ENCRYPTION_KEYS": "bm90LTMyLWJ5dGVz"}, tmp_path)
    assert result.returncode != 0
    assert "ENCRYPTION_KEYS entry 1 decodes to 12 bytes" in result.stderr


@pytest.mark.parametrize(
    "secret",
    ["s" * 31, " " * 10 + "s" * 16 + "\t" * 10 + "s" * 15 + " " * 10],
    ids=["31-characters", "padded-with-whitespace"],
)
def test_a_short_server_secret_fails_production_start_up(production_env, tmp_path, secret):
    result = _manage(["check"], {**production_env, "SERVER_SECRET_KEY": secret}, tmp_path)
    assert result.returncode != 0
    assert "SERVER_SECRET_KEY is too short" in result.stderr
    assert secret.strip() not in result.stderr


def test_a_short_server_secret_is_fine_in_development(production_env, tmp_path):
    env = {**production_env, "DEBUG": "true", "SERVER_SECRET_KEY": "dev"}
    result = _manage(["check"], env, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_bad_duration_fails_start_up(production_env, tmp_path):
    result = _manage(["check"], {**production_env, "CLI_SESSION_EXPIRES_IN": "soon"}, tmp_path)
    assert result.returncode != 0
    assert "CLI_SESSION_EXPIRES_IN" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("45", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m30", "7 days", "-5m", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_key_ring_rejects_duplicates_and_bad_base64():
    key = new_encryption_key()
    assert len(parse_key_ring(f"{key}, {new_encryption_key()}")) == 2
    with pytest.raises(KeyRingError, match="same key twice"):
        parse_key_ring(f"{key},{key}")
    with pytest.raises(KeyRingError, match="not valid base64"):
        parse_key_ring("***")


def test_env_file_is_written_once_with_fresh_secrets(tmp_path):
    path = tmp_path / ".env"
    assert ensure_env_file(path) is True
    first = path.read_text()
    assert "SECRET_KEY=" in first and "ENCRYPTION_KEYS=" in first and "SERVER_SECRET_KEY=" in first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert ensure_env_file(path) is False
    assert path.read_text() == first
    other = tmp_path / "other.env"
    ensure_env_file(other)
    assert other.read_text() != first


def test_an_app_command_names_the_configuration_error(production_env, tmp_path):
    env = {**production_env, "ENCRYPTION_KEYS": ""}
    result = _manage(["rotate_encryption_key"], env, tmp_path)
    assert result.returncode == 1
    assert "Configuration error: ENCRYPTION_KEYS is empty" in result.stderr
    assert "Unknown command" not in result.stderr
