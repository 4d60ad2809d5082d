"""Kay under ASGI, as production serves it (gunicorn with uvicorn workers, config.asgi):
pages and static files answer, request lines are redacted, and no middleware is sync-only
(Django would run every view below one in a thread, so an awaiting /ask would hold it)."""

import httpx
from django.conf import settings
from django.utils.module_loading import import_string

from tests.helpers.processes import answers, free_port, running


def test_every_middleware_is_async_capable():
    sync_only = [
        name
        for name in settings.MIDDLEWARE
        if not getattr(import_string(name), "async_capable", False)
    ]
    assert sync_only == []


def test_the_asgi_server_serves_pages_and_static_files_with_redacted_request_lines(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "asgi.log"
    with running(
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.py",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "config.asgi:application",
        log=log,
        env={
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "KAY_VAR_DIR": str(tmp_path),  # an empty database: the answers, not the data
        },
        ready=answers(f"{base}/healthz"),
        timeout=30,
    ):
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        css = httpx.get(f"{base}/static/css/admin.css", timeout=5)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        httpx.get(f"{base}/auth/status/StateValue123abc", timeout=5)
    text = log.read_text()
    assert "/healthz" in text  # requests are logged
    assert "StateValue123abc" not in text, text
