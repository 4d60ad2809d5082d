"""What every provider module provides, and the two ways we check a key.

Each provider module defines ``PROVIDER``: its label, the environment variable the
development fallback reads, the shape of its keys (a pattern, and the same in words), the
setting holding its base URL, and ``check(secret, base_url)`` — one cheap authenticated
call that tells a valid key from a rejected one. OpenAI and OpenAI-compatible APIs are
checked with the official ``openai`` SDK; the others with httpx. Nothing here logs or
returns the secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
import openai
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from core.http import http_client
from core.netguard import GuardedTransport

Outcome = Literal["valid", "invalid", "unverified"]


@dataclass(frozen=True)
class Check:
    """The outcome of one validation call: valid, invalid (rejected) or unverified.
    ``admin``: the provider said the key is an admin key, which no prefix tells
    (OpenRouter's management keys); stored as ``ApiKey.Kind.ADMIN``."""

    status: Outcome
    detail: str
    admin: bool = False


# Every key is one token of printable ASCII: no spaces, no line breaks, nothing an HTTP
# header could not carry (httpx refuses to send a non-ASCII header value).
PRINTABLE = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class Provider:
    slug: str
    label: str
    env_var: str
    # What the provider's keys look like, continuing "An OpenAI key …" (no final stop).
    shape: str
    # The keys the provider issues, as a full-match regex; None when any token may do.
    # Strict only where the format is certain: prefix, allowed characters, least length.
    pattern: str | None
    base_url_setting: str | None
    check: Callable[[str, str], Check]
    needs_base_url: bool = False
    # Keys starting with this are organisation admin keys: usage and billing data only,
    # no model calls (OpenAI's ``sk-admin-``). None: no prefix tells them (the check may).
    admin_prefix: str | None = None
    # How pages name its admin keys after the provider's label ("OpenAI admin key").
    admin_label: str = "admin key"

    @property
    def a_key(self) -> str:
        """ "an OpenAI key", "a Groq key": the label with its article."""
        article = "an" if self.label[0] in "AEIOU" else "a"
        return f"{article} {self.label} key"

    @property
    def has_prefix(self) -> bool:
        """Whether its keys start with a fixed prefix (its pattern with a literal), so a key
        matching it plainly belongs to this provider. A bare 32-character key (Mistral)
        or a UUID (Exa) could be anyone's."""
        return self.pattern is not None and self.pattern[:1].isalpha()

    @property
    def hint(self) -> str:
        """The expected format as a sentence, shown beside the key field."""
        return f"{self.a_key[0].upper()}{self.a_key[1:]} {self.shape}."

    def base_url(self, custom: str = "") -> str:
        if self.needs_base_url:
            return custom.rstrip("/")
        assert self.base_url_setting is not None
        return str(getattr(settings, self.base_url_setting)).rstrip("/")

    def is_admin_key(self, secret: str) -> bool:
        """Whether ``secret`` is an admin key (stored as ``ApiKey.Kind.ADMIN``)."""
        return self.admin_prefix is not None and secret.startswith(self.admin_prefix)

    def matches_format(self, secret: str) -> bool:
        """Whether ``secret`` can be one of this provider's keys."""
        if PRINTABLE.fullmatch(secret) is None:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, secret) is not None


def timeout() -> float:
    return float(settings.KEYS_VALIDATION_TIMEOUT)


def rejected(label: str, status: int) -> Check:
    return Check("invalid", f"{label} rejected this key (HTTP {status}).")


def unreachable(label: str, why: str) -> Check:
    # Also stored as the key's status detail, so it says nothing about saving.
    return Check("unverified", f"Could not check with {label}: {why}.")


@sensitive_variables()
def check_with_openai_sdk(
    label: str, secret: str, base_url: str, *, admin: bool = False, user_host: bool = False
) -> Check:
    """``GET /models`` (or, for admin keys, ``GET /organization/projects``) via the SDK.

    ``user_host``: the base URL came from a user, so the connection goes through
    ``GuardedTransport`` (private addresses refused, no second DNS lookup to rebind).
    """
    transport = (
        GuardedTransport(allow_private=settings.KEYS_ALLOW_PRIVATE_BASE_URLS) if user_host else None
    )
    client = openai.OpenAI(
        api_key=secret,
        admin_api_key=secret if admin else None,
        base_url=base_url,
        organization=None,
        project=None,
        timeout=timeout(),
        max_retries=0,
        # The SDK follows redirects by default: a vetted public base URL could then bounce
        # the check into the private network (core.http.check_base_url only saw the first host).
        http_client=openai.DefaultHttpxClient(follow_redirects=False, transport=transport),
    )
    try:
        with client:
            if admin:
                client.admin.organization.projects.list(limit=1)
            else:
                client.models.list()
    except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        return rejected(label, exc.status_code)
    except openai.APITimeoutError:
        return unreachable(label, "the request timed out")
    except openai.APIConnectionError:
        return unreachable(label, "the service could not be reached")
    except openai.APIStatusError as exc:
        return unreachable(label, f"it answered HTTP {exc.status_code}")
    except openai.APIError:
        return unreachable(label, "it sent an answer we could not read")
    except (ValueError, TypeError, KeyError, AttributeError):
        # A 200 whose body is not a model list (HTML, ``[]``, a bare number): the SDK's
        # parser fails on it with whatever it hits first. A user's server may send anything.
        return unreachable(label, "it sent an answer we could not read")
    return Check("valid", f"{label} accepted this key.", admin=admin)


@sensitive_variables()
def check_with_http(
    label: str,
    url: str,
    headers: dict[str, str],
    *,
    rejection_statuses: tuple[int, ...] = (401, 403),
    is_rejection: Callable[[httpx.Response], bool] | None = None,
    is_admin: Callable[[httpx.Response], bool] | None = None,
) -> Check:
    """One authenticated GET; 401/403 (or ``is_rejection``) means the key is invalid.
    ``is_admin``: whether a success says the key is an admin key."""
    try:
        with http_client(timeout=timeout()) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return unreachable(label, "the request timed out")
    except httpx.HTTPError:
        return unreachable(label, "the service could not be reached")
    if response.status_code in rejection_statuses or (is_rejection and is_rejection(response)):
        return rejected(label, response.status_code)
    if response.is_success:
        admin = is_admin is not None and is_admin(response)
        return Check("valid", f"{label} accepted this key.", admin=admin)
    return unreachable(label, f"it answered HTTP {response.status_code}")
