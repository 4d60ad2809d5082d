"""Production access logs (gunicorn) never carry OAuth codes, states or session ids."""

import httpx

from tests.helpers.processes import answers, free_port, running


def test_access_log_lines_are_redacted(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with running(
        "-m",
        "gunicorn",
        "-c",
        "config/gunicorn.py",
        "config.wsgi:application",
        log=log,
        env={"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
        ready=answers(f"{base}/healthz"),
        timeout=30,
    ):
        httpx.get(f"{base}/auth/status/StateValue123abc", timeout=5)
        httpx.get(
            f"{base}/connections/oauth/callback?service=jira&code=CodeValue456&state=StateQ789"
        )
        httpx.get(f"{base}/connections?session_id=kaysession_SessionValue000", timeout=5)
    text = log.read_text()
    assert "/healthz" in text  # the access log is on
    for secret in ("StateValue123abc", "CodeValue456", "StateQ789", "SessionValue000"):
        assert secret not in text, text
