"""Attack review 26 of 79dd188 (core/celery_redis.py: one redis client kept per channel).
Nothing here failed on the code as reviewed: cheap guards of what was tried, each run
through kombu's own transport and ours, which must behave alike. Needs REDIS_URL; the
restart test starts its own redis-server on a free port (never the shared ones)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest
import redis
from celery import Celery
from django.conf import settings
from kombu import Connection

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL")

TRANSPORTS = ["redis", "core.celery_redis:Transport"]


def _names() -> dict[str, str]:
    tag = uuid.uuid4().hex
    return {
        "queue": f"kay-ar26-{tag}",
        "unacked_key": f"kay-ar26-unacked-{tag}",
        "unacked_index_key": f"kay-ar26-unacked-index-{tag}",
        "unacked_mutex_key": f"kay-ar26-unacked-mutex-{tag}",
    }


def _cleanup(names: dict[str, str]) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(*names.values(), f"_kombu.binding.{names['queue']}")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tasks_sent_from_many_threads_at_once_all_arrive_as_kombu_sends_them(transport):
    names = _names()
    app = Celery("ar26", broker=settings.REDIS_URL, set_as_current=False)  # Kay's stays current
    app.conf.broker_transport = transport
    app.conf.task_serializer = "json"
    errors: list[str] = []
    start = threading.Barrier(12)

    def send(t):
        try:
            start.wait()
            for i in range(40):
                app.send_task("ar26.task", args=[t, i], queue=names["queue"])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(12)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        raw = redis.Redis.from_url(settings.REDIS_URL).lrange(names["queue"], 0, -1)
    finally:
        _cleanup(names)
        # Its pool is not closed: kombu keeps one per broker (URL and transport), shared
        # with Kay's own app, whose later sends would find it closed.
    assert not errors, errors[:3]
    messages = [json.loads(item) for item in raw]
    sent = {tuple(json.loads(base64.b64decode(m["body"]))[0]) for m in messages}
    assert len(messages) == len(sent) == 12 * 40
    first = messages[0]
    assert first["properties"]["delivery_info"] == {"exchange": "", "routing_key": names["queue"]}
    assert first["headers"]["task"] == "ar26.task" and first["content-type"] == "application/json"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unacked_message_comes_back_after_its_visibility_timeout_and_on_close(transport):
    """acks_late: a message taken is kept in the unacked hash (QoS.append, a pipeline
    over the kept client), given back once its visibility timeout passes, and given back
    when the channel closes unacked."""
    names = _names()
    options = {"visibility_timeout": 1, **{k: v for k, v in names.items() if k != "queue"}}
    store = redis.Redis.from_url(settings.REDIS_URL)
    try:
        with Connection(
            settings.REDIS_URL, transport=transport, transport_options=options
        ) as connection:
            queue = connection.SimpleQueue(names["queue"])
            queue.put({"n": 1})
            queue.put({"n": 2})
            queue.get(timeout=2)  # not acked
            assert (store.hlen(names["unacked_key"]), store.llen(names["queue"])) == (1, 1)
            time.sleep(1.2)
            queue.channel.qos.restore_visible(interval=1)
            assert (store.hlen(names["unacked_key"]), store.llen(names["queue"])) == (0, 2)
            again = queue.get(timeout=2)
            assert again.delivery_info.get("redelivered") is True
            again.ack()
            assert store.zcard(names["unacked_index_key"]) == 0
            queue.get(timeout=2)  # the other one, not acked
            queue.close()
        assert (store.hlen(names["unacked_key"]), store.llen(names["queue"])) == (0, 1)
    finally:
        _cleanup(names)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            redis.Redis(port=port, socket_connect_timeout=0.1).ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_publish_after_redis_restarted_reaches_the_new_server(transport):
    """The kept client's connections die with the server: the next publish must not stay
    broken (redis-py reconnects through the same pool, as it does for kombu's clients)."""
    port = _free_port()
    server = _redis_server(port)
    try:
        with Connection(f"redis://127.0.0.1:{port}/0", transport=transport) as connection:
            channel = connection.default_channel
            channel._put("q", {"body": "before"})
            os.kill(server.pid, signal.SIGTERM)
            server.wait(timeout=10)
            server = _redis_server(port)
            for n in range(3):
                channel._put("q", {"body": f"after-{n}"})
            assert redis.Redis(port=port).llen("q") == 3
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
