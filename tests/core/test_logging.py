import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from core.logging import REDACTED, RedactSecretsFilter, redact
from tests.helpers.processes import answers, free_port, running


def _record(msg, *args, exc_info=None):
    return logging.LogRecord("kay", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_it_redacts_provider_keys_bearer_tokens_and_jwts():
    text = redact(
        "key sk-proj-abcdefghijklmnop1234 ant sk-ant-api03-XYZxyz123456789 "
        "header Authorization: Bearer abc.def-ghi "
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    )
    assert "sk-proj" not in text
    assert "sk-ant" not in text
    assert "abc.def-ghi" not in text
    assert "eyJ" not in text
    assert text.count(REDACTED) == 4
    assert "Bearer [REDACTED]" in text


def test_it_redacts_values_of_secret_settings(settings):
    from core import logging as kay_logging

    kay_logging._setting_secrets.cache_clear()
    try:
        assert settings.SERVER_SECRET_KEY not in redact(f"got {settings.SERVER_SECRET_KEY}!")
        assert settings.SECRET_KEY not in redact(settings.SECRET_KEY)
    finally:
        kay_logging._setting_secrets.cache_clear()


def test_the_filter_redacts_arguments_and_tracebacks():
    try:
        raise ValueError("leaked sk-abcdefghijklmnopqrstuvwx in an exception")
    except ValueError:
        import sys

        record = _record("calling with %s", "sk-live1234567890abcdef", exc_info=sys.exc_info())
    RedactSecretsFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "sk-live" not in formatted
    assert "sk-abcdef" not in formatted
    assert "ValueError" in formatted


def test_json_lines_in_production_format(capsys):
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("kay.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s", "Bearer sk-proj-abcdefghijklmnop")
    finally:
        logger.removeHandler(handler)
    line = capsys.readouterr().err.strip()
    payload = json.loads(line)
    assert payload["message"] == "token Bearer [REDACTED]"


def test_json_lines_redact_the_extra_fields_too(capsys):
    """Production logs JSON, which writes every ``extra`` field: django.request passes the
    request, whose repr is the whole path and query string."""
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.utils.log import log_response
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    request = RequestFactory().get(
        "/connections/oauth/callback", {"code": "CodeSecret456", "state": "StateSecret123"}
    )
    try:
        response = HttpResponse(status=400)
        log_response("Bad request: %s", request.path, response=response, request=request)
        logging.getLogger("django.request").warning("x", extra={"key": "sk-live-abcdefghijkl"})
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    first, second = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines())
    assert "CodeSecret456" not in first["request"] and "StateSecret123" not in first["request"]
    assert "code=[REDACTED]" in first["request"]
    assert first["status_code"] == 400
    assert second["key"] == "[REDACTED]"


def test_it_redacts_credentials_in_query_strings():
    text = redact(
        "GET https://generativelanguage.googleapis.com/v1beta/models"
        "?key=AIzaSyA1234567890abcdefghijklmnopqrstu "
        "and /callback?code=abc123&state=xyz"
    )
    assert "AIzaSy" not in text
    assert "abc123" not in text
    assert "?key=[REDACTED]" in text
    assert "xyz" not in text


def test_it_redacts_cli_session_ids_and_oauth_states():
    text = redact(
        "Not Found: /auth/status/aq-M8czOemEkQ2-w_gI "
        "GET /connections?session_id=kaysession_abc123 body kaysession_zzz999"
    )
    assert "aq-M8cz" not in text
    assert "abc123" not in text
    assert "zzz999" not in text
    assert "/auth/status/[REDACTED]" in text


@contextmanager
def _development_server(tmp_path: Path) -> Iterator[str]:
    """`make run`'s `manage.py runserver` (DEBUG on), answering at the URL yielded; its
    output goes to ``tmp_path / "runserver.log"``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(
        "manage.py",
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        log=tmp_path / "runserver.log",
        # A database of its own (empty: answers may be 500s; the log lines are what count).
        env={"DEBUG": "true", "LOG_FORMAT": "text", "KAY_VAR_DIR": str(tmp_path)},
        ready=answers(f"{base}/healthz"),
    ):
        yield base


def test_the_development_server_access_log_is_redacted(tmp_path):
    """`make run` starts `manage.py runserver`; its `django.server` lines go through the filter."""
    with _development_server(tmp_path) as base:
        httpx.get(
            f"{base}/connections?session_id=kaysession_xyzSession&code=abcCode&state=defState"
        )
        httpx.get(f"{base}/connections/oauth/callback?service=jira&code=CodeQ456&state=StateQ789")
        httpx.get(f"{base}/auth/status/StateValue123abc", timeout=5)
    text = (tmp_path / "runserver.log").read_text()
    assert '"GET /healthz HTTP/1.1" 200' in text  # the access log is on
    assert "session_id=[REDACTED]" in text
    for secret in ("xyzSession", "abcCode", "defState", "CodeQ456", "StateQ789", "StateValue123"):
        assert secret not in text, text


def test_django_request_lines_are_redacted_while_debug_is_on(tmp_path):
    """With DEBUG on, Django's own handler printed every django.request line ("Not Found:
    <path>", "Internal Server Error: <path>") a second time, unfiltered."""
    with _development_server(tmp_path) as base:
        httpx.get(f"{base}/nothing-here/kaysession_NotFoundSecret1")
        httpx.get(f"{base}/accounts/password/reset/key/1-c3r2s1-ResetKeySecret2/", timeout=5)
    text = (tmp_path / "runserver.log").read_text()
    assert "Not Found: /nothing-here/[REDACTED]" in text
    for secret in ("NotFoundSecret1", "ResetKeySecret2"):
        assert secret not in text, text


def test_the_device_login_user_code_is_redacted():
    """verification_uri_complete carries it: whoever reads it can approve the waiting CLI
    into their own account."""
    text = redact('"GET /dashboard/device?user_code=WDJB-MJHT HTTP/1.1" 200')
    assert "WDJB-MJHT" not in text and "user_code=[REDACTED]" in text


def test_keys_of_emailed_account_links_are_redacted():
    """allauth puts the password-reset and email-confirmation keys in the path."""
    line = (
        '"GET /accounts/password/reset/key/1-c3r2s1-9f8e7d6c5b4a3f2e1d0c/ HTTP/1.1" 200 / '
        '"POST /accounts/confirm-email/MzQ:1tXyZa:aBcDeFgHiJkLmNoP/ HTTP/1.1" 302'
    )
    text = redact(line)
    assert "9f8e7d6c5b4a3f2e1d0c" not in text and "aBcDeFgHiJkLmNoP" not in text
    assert "/accounts/password/reset/key/1-[REDACTED]/" in text
    assert "/accounts/confirm-email/[REDACTED]/" in text
    # allauth's own next step names no secret and stays readable.
    assert redact("/accounts/password/reset/key/1-set-password/") == (
        "/accounts/password/reset/key/1-set-password/"
    )
