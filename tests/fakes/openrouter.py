"""A fake OpenRouter catalog API: a real HTTP server on 127.0.0.1 serving real payloads.

- ``GET /api/v1/models`` serves one of the recorded ``/models`` bodies in
  ``tests/fixtures/`` (excerpts of three real snapshots; switch with
  :meth:`FakeOpenRouter.use_models`), or any body given as a dict, such as
  :func:`shipped_models` (all 414 models of the snapshot Kay ships, for the benchmark).
- ``GET /api/v1/providers`` serves the recorded ``/providers`` body.
- ``GET /api/v1/models/{id}/endpoints`` serves the recorded Gemini 2.5 Pro Preview body for
  that model. For every other model, only one endpoints body was ever recorded, so the
  fake builds one in the same (2025) schema plus ``uptime_last_30m``, from the model's
  own listing: its author's first-party provider at the listed price and limits, and for
  open-weight models two hosts from the recorded provider list. Deterministic per model.

Failures are injected per path: :meth:`fail` (status codes, then success),
``malformed_models`` (a body that is not JSON).
"""

import json
import threading
import zlib
from collections import defaultdict, deque
from decimal import Decimal
from urllib.parse import unquote, urlparse

from tests.fakes.server import JSONHandler, LocalHTTPServer, load

# Excerpts of three real /models snapshots (see tests/fixtures/PROVENANCE.md): between them
# models are added, change price and vanish.
MODELS = {
    "2025-05-23": "openrouter_models_2025-05-23.excerpt.json",
    "2026-05-20": "openrouter_models_2026-05-20.excerpt.json",
    "2026-08-19": "openrouter_models_2026-08-19.excerpt.json",
}
PROVIDERS = "openrouter_providers_2026-05-20.json"
RECORDED_ENDPOINTS = {
    "google/gemini-2.5-pro-preview": (
        "openrouter_model_endpoints_google-gemini-2.5-pro-preview_2025-05-23.json"
    ),
}
FIRST_PARTY = {
    "qwen": "alibaba",
    "google": "google-vertex",
    "mistralai": "mistral",
    "x-ai": "xai",
    "bytedance-seed": "seed",
    "amazon": "amazon-nova",
    "rekaai": "reka",
}
HOSTS = ["deepinfra", "together", "fireworks", "novita", "parasail", "chutes", "nebius", "groq"]


def shipped_models() -> dict:
    """A /models body of every model in the shipped snapshot (the real 2026-08-19 listing)."""
    from models_catalog.snapshot import BACKUP_PATH

    document = json.loads(BACKUP_PATH.read_text(encoding="utf-8"))
    models = {
        model["id"]: {k: v for k, v in model.items() if k not in ("author", "featured", "endpoint")}
        for provider in document["providers"]
        for model in provider["models"]
    }
    return {"data": list(models.values())}


class FakeOpenRouter(LocalHTTPServer):
    def __init__(self, models: str | dict = "2026-08-19", *, delay: float = 0.0) -> None:
        self.providers_body = load(PROVIDERS)
        self.provider_names = {p["slug"]: p["name"] for p in self.providers_body["data"]}
        self.use_models(models)
        self.delay = delay
        self.malformed_models = False
        self.retry_after = "0"  # sent with injected 429s
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._failures: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        super().__init__()

    # --- control -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    def __enter__(self) -> "FakeOpenRouter":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def use_models(self, snapshot: str | dict) -> None:
        """Serve another recorded /models body (a date key of MODELS, or a dict body)."""
        self.models_body = snapshot if isinstance(snapshot, dict) else load(MODELS[snapshot])
        self.by_id = {}
        models = self.models_body.get("data") if isinstance(self.models_body, dict) else None
        for model in models if isinstance(models, list) else []:
            if not isinstance(model, dict) or "id" not in model:
                continue  # a deliberately malformed body
            self.by_id[model["id"]] = model
            if model.get("canonical_slug"):
                self.by_id.setdefault(model["canonical_slug"], model)

    def fail(self, path: str, *statuses: int) -> None:
        """Answer the next requests for ``path`` (e.g. ``/models``) with these statuses."""
        with self._lock:
            self._failures[path].extend(statuses)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    # --- content -----------------------------------------------------------------------

    def endpoints_body(self, model_id: str):
        if model_id in RECORDED_ENDPOINTS:
            return load(RECORDED_ENDPOINTS[model_id])
        model = self.by_id.get(model_id)
        if model is None:
            return None
        author = model["id"].split("/", 1)[0].lstrip("~")
        first = FIRST_PARTY.get(author, author)
        slugs = [first] if first in self.provider_names or not model.get("hugging_face_id") else []
        if model.get("hugging_face_id"):
            start = zlib.crc32(model["id"].encode()) % len(HOSTS)
            slugs += [HOSTS[start], HOSTS[(start + 3) % len(HOSTS)]]
        endpoints = [self._endpoint(model, slug, index) for index, slug in enumerate(slugs)]
        return {
            "data": {
                "id": model["id"],
                "name": model["name"],
                "created": model["created"],
                "description": model.get("description", ""),
                "architecture": model["architecture"],
                "endpoints": endpoints,
            }
        }

    def _endpoint(self, model, slug: str, index: int):
        name = self.provider_names.get(slug, slug.replace("-", " ").title())
        pricing = dict(model.get("pricing") or {})
        hosted = index > 0 or slug in HOSTS
        if index > 0:  # a second host charges a little more
            for key in ("prompt", "completion"):
                if key in pricing and not str(pricing[key]).startswith("-"):
                    pricing[key] = format(Decimal(pricing[key]) * Decimal("1.2"), "f")
        top = model.get("top_provider") or {}
        seed = zlib.crc32(f"{model['id']}@{slug}".encode())
        return {
            "name": f"{name} | {model['id']}",
            "context_length": top.get("context_length") or model.get("context_length"),
            "pricing": pricing,
            "provider_name": name,
            "tag": f"{slug}/fp8" if hosted else slug,
            "quantization": "fp8" if hosted else None,
            "max_completion_tokens": top.get("max_completion_tokens"),
            "max_prompt_tokens": None,
            "supported_parameters": model.get("supported_parameters") or [],
            "status": 0,
            "uptime_last_30m": round(97 + (seed % 300) / 100, 2),
        }

    # --- HTTP ----------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(JSONHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                if not path.startswith("/api/v1/"):
                    return self.send_json(404, {"error": {"code": 404, "message": "Not Found"}})
                route = path[len("/api/v1") :]
                with fake._lock:
                    fake.requests.append((route, dict(self.headers)))
                    queued = fake._failures.get(route)
                    status = queued.popleft() if queued else None
                with fake._lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    self._answer(route, status)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _answer(self, route: str, status: int | None) -> None:
                if fake.delay:
                    threading.Event().wait(fake.delay)
                if status:
                    headers = {"Retry-After": fake.retry_after} if status == 429 else None
                    message = {"error": {"code": status, "message": "Injected failure"}}
                    return self.send_json(status, message, headers=headers)
                if route == "/models":
                    if fake.malformed_models:
                        return self.send_json(200, b'{"data": [{"id": "openai/gpt-4o", "pric')
                    return self.send_json(200, fake.models_body)
                if route == "/providers":
                    return self.send_json(200, fake.providers_body)
                if route.startswith("/models/") and route.endswith("/endpoints"):
                    body = fake.endpoints_body(unquote(route[len("/models/") : -len("/endpoints")]))
                    if body is not None:
                        return self.send_json(200, body)
                return self.send_json(404, {"error": {"code": 404, "message": "Model not found"}})

        return Handler
