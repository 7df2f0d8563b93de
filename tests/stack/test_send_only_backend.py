"""T1: the API's and the operator's Celery app sends canvases without a Pub/Sub round trip.

Celery's Redis result backend SUBSCRIBEs to a task's result channel when it sends the
task (for AsyncResult.get()) and UNSUBSCRIBEs when the result object is dropped. The
send-only backend the API and the operator use does neither: they read results from
Redis directly. A private redis-server counts the commands (INFO commandstats).
"""

import gc
from collections.abc import Callable

import redis

from celery_harder.celery_config import create_celery_app
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder_dev.stack import RedisServer

LEAF = {"task": "add", "args": [1, 1]}
WORKFLOWS = [
    {"chain": [LEAF, {"task": "mul", "args": [2]}]},
    {"group": [LEAF, LEAF, LEAF]},
    {"chord": {"header": [LEAF, LEAF], "body": {"task": "xsum"}}},
]


def pubsub_calls(server: RedisServer, send: Callable[[], None]) -> dict[str, int]:
    """SUBSCRIBE, UNSUBSCRIBE and LPUSH calls the server saw while `send` ran."""
    counter = redis.Redis.from_url(server.url(0))
    before = counter.info("commandstats")
    send()
    gc.collect()  # dropped result objects unsubscribe now, while their Redis is up
    after = counter.info("commandstats")
    return {
        name: after.get(f"cmdstat_{name}", {"calls": 0})["calls"]
        - before.get(f"cmdstat_{name}", {"calls": 0})["calls"]
        for name in ("subscribe", "unsubscribe", "lpush")
    }


def test_send_only_clients_send_without_subscribing(private_redis: RedisServer) -> None:
    client = create_task_client(Settings(broker_url=private_redis.url(0)))
    engine = WorkflowEngine(client)

    def send() -> None:
        for spec in WORKFLOWS:
            engine.submit(spec)

    try:
        calls = pubsub_calls(private_redis, send)
    finally:
        client.app.close()
    assert calls["lpush"] >= len(WORKFLOWS), calls  # the canvases were sent
    assert (calls["subscribe"], calls["unsubscribe"]) == (0, 0), calls


def test_celery_s_own_backend_subscribes_on_send(private_redis: RedisServer) -> None:
    """The contrast: a task sent with Celery's RedisBackend pays both round trips.

    One plain send_task, its result dropped at once: a canvas would leave result
    objects in the backend's registry, to unsubscribe after this test's Redis is gone.
    """
    app = create_celery_app("plain_client", Settings(broker_url=private_redis.url(0)))
    try:
        calls = pubsub_calls(private_redis, lambda: app.send_task("add", (1, 1)).forget())
    finally:
        app.close()
    assert (calls["subscribe"], calls["unsubscribe"], calls["lpush"]) == (1, 1, 1), calls
