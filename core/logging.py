"""A logging filter that removes secrets from every record before it is written."""

import logging
import re
import traceback
from functools import lru_cache

from django.conf import settings

REDACTED = "[REDACTED]"

_PATTERNS = [
    # Authorization header values (first, so the credential is consumed whole)
    re.compile(r"\b(Bearer|bearer|Basic|Token)\s+[A-Za-z0-9._~+/\-]+=*"),
    # Provider keys: sk-…, sk-proj-…, sk-ant-…, sk-or-v1-…, sk-admin-…
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
    # JWTs (three base64url segments)
    re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    # Credentials in query strings (Gemini's ?key=, OAuth codes and tokens, the device
    # login's user code in verification_uri_complete)
    re.compile(
        r"(?i)([?&](?:key|api_key|apikey|access_token|refresh_token|token|code|state|client_secret"
        r"|user_code|device_code)=)[^&\s\"']+"
    ),
    # Possession-is-credential identifiers of the CLI flow (seed 003): session ids and the
    # OAuth state in /auth/status/<state>
    re.compile(r"\bkaysession_[A-Za-z0-9_\-]+"),
    re.compile(r"(/auth/status/)[^\s/?\"']+"),
    re.compile(r"(?i)([?&]session_id=)[^&\s\"']+"),
    # allauth's links sent by email: the password-reset key and the email-confirmation key
    # travel in the path (/accounts/password/reset/key/<uid>-<key>/, …/confirm-email/<key>/).
    re.compile(r"(/password/reset/key/[0-9A-Za-z]+-)(?!set-password/)[^\s/?\"']+"),
    re.compile(r"(/confirm-email/)[^\s/?\"']+"),
    # The assistant's confirmation tokens (confirm_ + token_urlsafe(32)): whoever holds one
    # approves the write it names, as its owner
    re.compile(r"\bconfirm_[A-Za-z0-9_\-]{40,}"),
    # Google API keys
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    # Stripe-style secrets
    re.compile(r"\b(?:rk|whsec|sk_live|sk_test)_[A-Za-z0-9]{8,}"),
    # A database error's text after its first line quotes values (a refused row whole, a
    # key, JSON it could not take, the statement with its values bound): a user's prompt,
    # a model's answer, an email address. To the end of the text: a row spans lines.
    re.compile(r"(DETAIL:|CONTEXT:|HINT:|LINE \d+:)[\s\S]*"),
]


@lru_cache(maxsize=1)
def _setting_secrets() -> tuple[str, ...]:
    """Values of settings whose name says they are secret (``*SECRET*``, ``*KEY*``)."""
    values: list[str] = []
    for name in dir(settings):
        if not name.isupper() or not ("SECRET" in name or "KEY" in name):
            continue
        value = getattr(settings, name, None)
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, bytes):
                continue
            if isinstance(item, str) and len(item) >= 8:
                values.append(item)
    return tuple(sorted(set(values), key=len, reverse=True))


def _keep_label(match: re.Match[str]) -> str:
    """Keep what names the secret (``Bearer``, ``?key=``) and drop the secret itself."""
    if not match.lastindex:
        return REDACTED
    label = match.group(1)
    if label.endswith(("=", "/", "-")):
        return f"{label}{REDACTED}"
    return f"{label} {REDACTED}"


def redact(text: str) -> str:
    for secret in _setting_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(_keep_label, text)
    return text


# What every record has; anything else was passed as ``extra`` (and the JSON formatter
# writes it out).
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class RedactSecretsFilter(logging.Filter):
    """Rewrite the message, any exception text and every ``extra`` value of a record with
    secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the log line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        # django.request passes the request itself (its repr is the full path and query
        # string: OAuth codes, states, session ids); numbers and None stay as they are.
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and not isinstance(value, int | float | None):
                setattr(record, name, redact(value if isinstance(value, str) else str(value)))
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now so the formatter prints the redacted copy.
            record.exc_text = redact(_traceback_text(record.exc_info[1]))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _traceback_text(exc: BaseException) -> str:
    """The traceback as ``logging`` prints it, each database error in it (and in its
    causes) said by its first line and SQLSTATE only: the rest quotes values."""
    formatted = traceback.TracebackException.from_exception(exc)
    _scrub_database_errors(formatted, exc, set())
    return "".join(formatted.format()).rstrip("\n")


def _scrub_database_errors(
    formatted: traceback.TracebackException | None, exc: BaseException | None, seen: set[int]
) -> None:
    if formatted is None or exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    if _is_database_error(exc):
        first = str(exc).split("\n", 1)[0]
        first = _QUOTED_VALUE.sub(r"\1[REDACTED]", first)
        state = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)
        formatted._str = f"{first} (SQLSTATE {state})" if state else first  # type: ignore[attr-defined]
    _scrub_database_errors(formatted.__cause__, exc.__cause__, seen)
    _scrub_database_errors(formatted.__context__, exc.__context__, seen)


# A value a first line ends with (``invalid input syntax for type integer: "abc"``).
_QUOTED_VALUE = re.compile(r'(:\s*)"[^"]*"\s*$')


def _is_database_error(exc: BaseException) -> bool:
    from django.db import Error as DjangoDatabaseError

    if isinstance(exc, DjangoDatabaseError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.Error)
