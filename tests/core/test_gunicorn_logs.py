"""Production access logs (gunicorn) never carry OAuth codes, states or session ids."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_access_log_lines_are_redacted(tmp_path):
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "config/gunicorn.py",
                "config.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        httpx.get(f"{base}/auth/status/StateValue123abc", timeout=5)
        httpx.get(
            f"{base}/connections/oauth/callback?service=jira&code=CodeValue456&state=StateQ789"
        )
        httpx.get(f"{base}/connections?session_id=kaysession_SessionValue000", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)
    text = log.read_text()
    assert "/healthz" in text  # the access log is on
    for secret in ("StateValue123abc", "CodeValue456", "StateQ789", "SessionValue000"):
        assert secret not in text, text
