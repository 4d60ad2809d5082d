"""A fake Atlassian (3LO) and Bitbucket Cloud OAuth + API server on 127.0.0.1.

Real HTTP, the real protocol: ``/authorize`` redirects the browser back with a code (or
``error=access_denied`` when :attr:`deny` is set), the token endpoints exchange codes
(checking client credentials, redirect URI and the PKCE S256 verifier) and rotate
refresh tokens (a spent one answers ``invalid_grant``, as Atlassian's rotating tokens
do), and the API answers ``/me``, ``/oauth/token/accessible-resources``,
``/2.0/user`` and ``/2.0/user/emails`` for a valid access token only. Bodies are the
recorded payloads in ``tests/fixtures/``.

Failures are injected per path with :meth:`FakeAtlassian.fail`: the next requests answer
with the given statuses (with ``Retry-After`` when :attr:`retry_after` is set) or, for
:data:`DROP`, close the connection without an answer; later requests are served normally.

Base URLs for settings: :attr:`atlassian_auth_url`, :attr:`atlassian_api_url`,
:attr:`bitbucket_auth_url`, :attr:`bitbucket_api_url`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from urllib.parse import parse_qsl, urlencode, urlparse

from tests.fakes.server import JSONHandler, LocalHTTPServer, load

CLIENT_ID = "fake-atlassian-client"
CLIENT_SECRET = "fake-atlassian-secret"
BB_CLIENT_ID = "fake-bitbucket-key"
BB_CLIENT_SECRET = "fake-bitbucket-secret"
TOKEN_PATHS = {
    "atlassian": "/atlassian/auth/oauth/token",
    "bitbucket": "/bitbucket/site/oauth2/access_token",
}
DROP = "drop"  # an injected failure: close the connection without answering


class FakeAtlassian(LocalHTTPServer):
    def __init__(self) -> None:
        self.me = load("atlassian_me_response_django-allauth-fixture.json")
        self.token_shape = load("atlassian_oauth_token_response_psoxy-docs.json")
        self.jira_sites = load("atlassian_accessible_resources_multi-site_passport-readme.json")
        self.confluence_sites = load("atlassian_accessible_resources_confluence_official-docs.json")
        self.bitbucket_user = {
            "type": "user",
            "display_name": self.me["name"],
            "nickname": self.me["nickname"],
            "account_id": self.me["account_id"],
            "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
            "account_status": "active",
            "links": {"avatar": {"href": self.me["picture"]}},
        }
        self.deny = False
        self.expires_in = int(self.token_shape["expires_in"])
        self.refresh_delay = 0.0
        self.refresh_calls = 0
        self.token_requests: list[dict] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.retry_after: str | None = None  # sent with injected 429s and 503s
        self._failures: dict[str, deque[int | str]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._codes: dict[str, dict] = {}
        self._access: dict[str, dict] = {}
        self._refresh: dict[str, dict] = {}  # token -> {"spent": bool, ...}
        self._lock = threading.Lock()
        super().__init__()

    # --- control -------------------------------------------------------------------------

    atlassian_auth_url = property(lambda self: f"{self.origin}/atlassian/auth")
    atlassian_api_url = property(lambda self: f"{self.origin}/atlassian/api")
    bitbucket_auth_url = property(lambda self: f"{self.origin}/bitbucket/site/oauth2")
    bitbucket_api_url = property(lambda self: f"{self.origin}/bitbucket/api/2.0")

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def revoke_refresh_tokens(self) -> None:
        """As when the user revokes the app at Atlassian: every refresh token is dead."""
        with self._lock:
            for entry in self._refresh.values():
                entry["spent"] = True

    def live_refresh_tokens(self) -> list[str]:
        with self._lock:
            return [token for token, entry in self._refresh.items() if not entry["spent"]]

    def issue_tokens(self, provider: str = "atlassian", scope: str = "read:jira-work") -> dict:
        """A token response as after a consent, for seeding a connection directly."""
        with self._lock:
            return self._issue(provider, scope)

    def fail(self, path: str, *answers: int | str) -> None:
        """Answer the next requests for ``path`` with these statuses (or :data:`DROP`)."""
        with self._lock:
            self._failures[path].extend(answers)

    # --- token logic ---------------------------------------------------------------------

    def _issue(self, provider: str, scope: str) -> dict:
        n = next(self._ids)
        access, refresh = f"{provider}-access-{n}", f"{provider}-refresh-{n}"
        self._access[access] = {"provider": provider, "scope": scope}
        self._refresh[refresh] = {"provider": provider, "scope": scope, "spent": False}
        body = {
            "access_token": access,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
            "refresh_token": refresh,
        }
        body["scopes" if provider == "bitbucket" else "scope"] = scope
        return body

    def _grant(self, provider: str, form: dict, client: tuple[str, str]) -> tuple[int, dict]:
        expected = (
            (BB_CLIENT_ID, BB_CLIENT_SECRET)
            if provider == "bitbucket"
            else (CLIENT_ID, CLIENT_SECRET)
        )
        if client != expected:
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self._lock:
                entry = self._codes.pop(form.get("code", ""), None)
                if entry is None or entry["provider"] != provider:
                    return 403, {"error": "invalid_grant", "error_description": "Invalid code"}
                if entry["redirect_uri"] != form.get("redirect_uri"):
                    return 403, {"error": "invalid_grant", "error_description": "redirect_uri"}
                if entry["challenge"]:
                    verifier = form.get("code_verifier", "")
                    digest = hashlib.sha256(verifier.encode()).digest()
                    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                    if computed != entry["challenge"]:
                        return 403, {"error": "invalid_grant", "error_description": "PKCE"}
                return 200, self._issue(provider, entry["scope"])
        if grant == "refresh_token":
            with self._lock:
                self.refresh_calls += 1
            if self.refresh_delay:
                time.sleep(self.refresh_delay)
            with self._lock:
                entry = self._refresh.get(form.get("refresh_token", ""))
                if entry is None or entry["spent"] or entry["provider"] != provider:
                    return 403, {
                        "error": "invalid_grant",
                        "error_description": "Unknown or invalid refresh token.",
                    }
                entry["spent"] = True
                return 200, self._issue(provider, entry["scope"])
        return 400, {"error": "unsupported_grant_type"}

    def _authorize(self, provider: str, query: dict) -> tuple[int, dict, str]:
        expected = BB_CLIENT_ID if provider == "bitbucket" else CLIENT_ID
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != expected or not redirect:
            return 400, {"error": "invalid_client"}, ""
        if provider == "atlassian" and (
            query.get("audience") != "api.atlassian.com" or query.get("response_type") != "code"
        ):
            return 400, {"error": "invalid_request"}, ""
        sep = "&" if "?" in redirect else "?"
        if self.deny:
            params = {"error": "access_denied", "state": query.get("state", "")}
            return 302, {}, f"{redirect}{sep}{urlencode(params)}"
        code = f"{provider}-code-{next(self._ids)}"
        with self._lock:
            self._codes[code] = {
                "provider": provider,
                "redirect_uri": redirect,
                "scope": query.get("scope", "account email repository pullrequest"),
                "challenge": query.get("code_challenge", ""),
            }
        params = {"code": code, "state": query.get("state", "")}
        return 302, {}, f"{redirect}{sep}{urlencode(params)}"

    def _api(self, provider: str, path: str, bearer: str) -> tuple[int, object]:
        with self._lock:
            entry = self._access.get(bearer)
        if entry is None or entry["provider"] != provider:
            return 401, {"code": 401, "message": "Unauthorized"}
        if provider == "atlassian" and path == "/me":
            return 200, self.me
        if provider == "atlassian" and path == "/oauth/token/accessible-resources":
            return 200, (
                self.confluence_sites if "confluence" in entry["scope"] else self.jira_sites
            )
        if provider == "bitbucket" and path == "/user":
            return 200, self.bitbucket_user
        if provider == "bitbucket" and path == "/user/emails":
            return 200, {
                "values": [
                    {
                        "type": "email",
                        "email": self.me["email"],
                        "is_primary": True,
                        "is_confirmed": True,
                    }
                ]
            }
        return 404, {"error": "not found"}

    # --- HTTP ----------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(JSONHandler):
            def _injected(self, path: str) -> bool:
                """Record the request; answer an injected failure if one is queued."""
                with fake._lock:
                    fake.requests.append((self.command, path))
                    queued = fake._failures.get(path)
                    answer = queued.popleft() if queued else None
                if answer is None:
                    return False
                if answer == DROP:
                    self.close_connection = True  # no status line: the client sees a disconnect
                    return True
                headers = {}
                if fake.retry_after is not None and answer in (429, 503):
                    headers["Retry-After"] = fake.retry_after
                self.send_json(answer, {"error": "injected", "status": answer}, headers=headers)
                return True

            def do_GET(self):
                url = urlparse(self.path)
                if self._injected(url.path):
                    return None
                query = dict(parse_qsl(url.query))
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                for prefix, provider in (
                    ("/atlassian/auth/authorize", "atlassian"),
                    ("/bitbucket/site/oauth2/authorize", "bitbucket"),
                ):
                    if url.path == prefix:
                        status, body, location = fake._authorize(provider, query)
                        return self.send_json(status, body, location=location)
                for prefix, provider in (
                    ("/atlassian/api", "atlassian"),
                    ("/bitbucket/api/2.0", "bitbucket"),
                ):
                    if url.path.startswith(prefix):
                        status, body = fake._api(provider, url.path[len(prefix) :], bearer)
                        return self.send_json(status, body)
                return self.send_json(404, {"error": "not found"})

            def do_POST(self):
                url = urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if self._injected(url.path):
                    return None
                if url.path == TOKEN_PATHS["atlassian"]:
                    form = json.loads(raw or "{}")
                    client = (form.pop("client_id", ""), form.pop("client_secret", ""))
                    provider = "atlassian"
                elif url.path == TOKEN_PATHS["bitbucket"]:
                    form = dict(parse_qsl(raw))
                    basic = self.headers.get("Authorization", "").removeprefix("Basic ")
                    user, _, password = base64.b64decode(basic or b"").decode().partition(":")
                    client = (user, password)
                    provider = "bitbucket"
                else:
                    return self.send_json(404, {"error": "not found"})
                with fake._lock:
                    fake.token_requests.append({"provider": provider, **form})
                status, body = fake._grant(provider, form, client)
                return self.send_json(status, body)

        return Handler
