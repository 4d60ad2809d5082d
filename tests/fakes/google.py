"""A fake Google OAuth 2.0 / OpenID Connect server on 127.0.0.1, for "Sign in with Google".

Real HTTP, the protocol allauth's Google provider speaks: ``/o/oauth2/v2/auth`` sends the
browser back to the redirect URI with a one-time code (for the right client id,
``response_type=code`` and a redirect URI), and ``/token`` exchanges that code once, for
the client's id and secret and the same redirect URI, for an access token and an ID token
carrying Google's claims about :attr:`FakeGoogle.person`. Failures answer as Google does
(``invalid_client``, ``invalid_grant``), so the client sees real error bodies.

allauth does not check the signature of an ID token it fetched itself from the token
endpoint over TLS (OpenID Connect Core 1.0 §3.1.3.7), so it is signed with a throwaway key.

Point allauth at it with :attr:`authorize_url` and :attr:`access_token_url`.
"""

from __future__ import annotations

import itertools
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlparse

import jwt

from tests.fakes.server import JSONHandler, LocalHTTPServer

CLIENT_ID = "kay-test.apps.googleusercontent.com"
CLIENT_SECRET = "fake-google-secret"
ISSUER = "https://accounts.google.com"
THROWAWAY_KEY = "fake-google-id-token-signing-key-unchecked"


class FakeGoogle(LocalHTTPServer):
    def __init__(self) -> None:
        self.person = {
            "sub": "109876543210",
            "email": "Grace@Example.com",
            "email_verified": True,
            "name": "Grace Hopper",
            "given_name": "Grace",
            "family_name": "Hopper",
        }
        self.token_requests: list[dict] = []  # every form posted to /token
        self._codes: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__()

    authorize_url = property(lambda self: f"{self.origin}/o/oauth2/v2/auth")
    access_token_url = property(lambda self: f"{self.origin}/token")

    # --- protocol ------------------------------------------------------------------------

    def _authorize(self, query: dict) -> tuple[int, dict, str]:
        redirect = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or not redirect:
            return 400, {"error": "invalid_client"}, ""
        if query.get("response_type") != "code":
            return 400, {"error": "unsupported_response_type"}, ""
        code = f"4/google-code-{next(self._ids)}"
        with self._lock:
            self._codes[code] = {"redirect_uri": redirect}
        params = {"code": code, "state": query.get("state", ""), "scope": query.get("scope", "")}
        return 302, {}, f"{redirect}?{urlencode(params)}"

    def _token(self, form: dict) -> tuple[int, dict]:
        with self._lock:
            self.token_requests.append(form)
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            if form.get("grant_type") != "authorization_code":
                return 400, {"error": "unsupported_grant_type"}
            entry = self._codes.pop(form.get("code", ""), None)
        if entry is None or entry["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": CLIENT_ID, "azp": CLIENT_ID, "iat": now, "exp": now + 3600}
        return 200, {
            "access_token": f"ya29.fake-{next(self._ids)}",
            "expires_in": 3599,
            "token_type": "Bearer",
            "scope": "openid https://www.googleapis.com/auth/userinfo.email",
            "id_token": jwt.encode({**claims, **self.person}, THROWAWAY_KEY, algorithm="HS256"),
        }

    # --- HTTP ----------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(JSONHandler):
            def do_GET(self):
                url = urlparse(self.path)
                if url.path != "/o/oauth2/v2/auth":
                    return self.send_json(404, {"error": "not_found"})
                status, body, location = fake._authorize(dict(parse_qsl(url.query)))
                return self.send_json(status, body, location=location)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if urlparse(self.path).path != "/token":
                    return self.send_json(404, {"error": "not_found"})
                return self.send_json(*fake._token(dict(parse_qsl(raw))))

        return Handler
