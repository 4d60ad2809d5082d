"""A fake Stripe API on 127.0.0.1 for the official ``stripe`` SDK to talk to.

It answers the three calls Kay makes, as Stripe does: form-encoded bodies
(``line_items[0][price_data][unit_amount]=1000``), ``Authorization: Bearer sk_…``,
``Idempotency-Key`` honoured (the same key answers the same object), and Stripe's own
example objects (``tests/fixtures/stripe/stripe_openapi_fixtures3_objects.json``) with
the request's values filled in:

===================================  ======================================
request                              answer
===================================  ======================================
POST /v1/customers                   a ``customer``
POST /v1/checkout/sessions           an open, unpaid ``checkout.session``
POST /v1/billing_portal/sessions     a ``billing_portal.session``
===================================  ======================================

``fail_status`` makes every request answer that status with Stripe's error body.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.server import JSONHandler, LocalHTTPServer, load

OBJECTS = load("stripe/stripe_openapi_fixtures3_objects.json")
SECRET_KEY = "sk_test_kay_fake_0123456789"


def form_decode(body: str) -> dict[str, Any]:
    """Stripe's form encoding back to nested dicts and lists."""
    decoded: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        target: Any = decoded
        for part, following in itertools.pairwise(parts):
            default: Any = [] if following.isdigit() else {}
            if isinstance(target, list):
                index = int(part)
                while len(target) <= index:
                    target.append(default)
                target = target[index]
            else:
                target = target.setdefault(part, default)
        last = parts[-1]
        if isinstance(target, list):
            target.append(value)
        else:
            target[last] = value
    return decoded


@dataclass
class Request:
    method: str
    path: str
    form: dict[str, Any]
    idempotency_key: str


class FakeStripe(LocalHTTPServer):
    def __init__(self) -> None:
        self.fail_status = 0
        self.requests: list[Request] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self._by_idempotency_key: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(JSONHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = form_decode(self.rfile.read(length).decode())
                key = self.headers.get("Idempotency-Key", "")
                fake.requests.append(Request("POST", self.path, form, key))
                if self.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                    self.send_json(401, _error("invalid_request_error", "Invalid API Key."))
                    return
                if fake.fail_status:
                    self.send_json(fake.fail_status, _error("api_error", "Something broke."))
                    return
                build = {
                    "/v1/customers": fake._customer,
                    "/v1/checkout/sessions": fake._checkout_session,
                    "/v1/billing_portal/sessions": fake._portal_session,
                }.get(self.path)
                if build is None:
                    self.send_json(404, _error("invalid_request_error", "Unrecognized URL."))
                    return
                with fake._lock:
                    if key and key in fake._by_idempotency_key:
                        answer = fake._by_idempotency_key[key]
                    else:
                        answer = build(form)
                        if key:
                            fake._by_idempotency_key[key] = answer
                self.send_json(200, answer, headers={"Request-Id": "req_fake"})

        return Handler

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _customer(self, form: dict[str, Any]) -> dict[str, Any]:
        customer = copy.deepcopy(OBJECTS["customer"])
        customer.update(
            id=self._next_id("cus"), email=form.get("email"), metadata=form.get("metadata", {})
        )
        self.customers[customer["id"]] = customer
        return customer

    def _checkout_session(self, form: dict[str, Any]) -> dict[str, Any]:
        session = copy.deepcopy(OBJECTS["checkout.session"])
        item = form["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item["quantity"])
        session_id = f"cs_test_{self._next_id('kay')}"
        session.update(
            id=session_id,
            amount_subtotal=amount,
            amount_total=amount,
            currency=item["price_data"]["currency"],
            customer=form.get("customer"),
            client_reference_id=form.get("client_reference_id"),
            metadata=form.get("metadata", {}),
            mode=form["mode"],
            success_url=form["success_url"],
            cancel_url=form["cancel_url"],
            payment_intent=None,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
        )
        self.sessions[session_id] = session
        return session

    def _portal_session(self, form: dict[str, Any]) -> dict[str, Any]:
        portal = copy.deepcopy(OBJECTS["billing_portal.session"])
        portal_id = self._next_id("bps")
        portal.update(
            id=portal_id,
            customer=form["customer"],
            return_url=form.get("return_url"),
            url=f"https://billing.stripe.com/p/session/test_{portal_id}",
        )
        return portal


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}
