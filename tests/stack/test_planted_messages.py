"""T1: only catalog tasks run. Messages planted straight into the queue's Redis list, as
anyone who can write to Redis could, are refused by a real worker and never execute.

Each message is built by hand in kombu's Redis envelope (the JSON document the
transport LPUSHes), not through Celery, the way a hostile writer would.
"""

import base64
import json
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest

from celery_harder.settings import Settings
from celery_harder.task_client import TaskClient, create_task_client
from celery_harder_dev.polling import wait_until
from tests.support.stack import RedisServer, StackEnv, Worker

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def envelope(task: str, task_id: str, body: bytes, content_type: str, encoding: str) -> str:
    """kombu's Redis message for Celery's protocol 2: task name and id in the headers."""
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": encoding,
        "content-type": content_type,
        "headers": {
            "lang": "py", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
            "group": None, "retries": 0, "eta": None, "expires": None, "shadow": None,
            "timelimit": [None, None], "argsrepr": "", "kwargsrepr": "", "origin": "planted",
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2, "priority": 0,
            "delivery_info": {"exchange": "", "routing_key": "celery"},
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })  # fmt: skip


def json_message(task: str, task_id: str, args: list[Any]) -> str:
    body = json.dumps([args, {}, EMBED]).encode()
    return envelope(task, task_id, body, "application/json", "utf-8")


class CreatesFile:
    """Unpickling this calls open(path, "w"): the file appears only if someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def pickle_message(task: str, task_id: str, marker: Path) -> str:
    body = pickle.dumps(((CreatesFile(marker), 1), {}, EMBED))
    return envelope(task, task_id, body, "application/x-python-serialize", "binary")


@pytest.fixture
def client(redis_server: RedisServer) -> TaskClient:
    task_client = create_task_client(Settings(broker_url=redis_server.url(0)))
    yield task_client
    task_client.app.close()


def test_planted_pickle_and_non_catalog_messages_never_execute(
    redis_server: RedisServer, stack: StackEnv, worker: Worker, client: TaskClient, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    ids = {name: str(uuid.uuid4()) for name in ("pickle", "builtin", "unknown", "control")}
    planted = [
        pickle_message("add", ids["pickle"], marker),  # a catalog name, pickled arguments
        json_message("celery.accumulate", ids["builtin"], [1, 2]),  # registered, not catalog
        json_message("os.system", ids["unknown"], ["touch /tmp/owned"]),  # never registered
        json_message("add", ids["control"], [20, 22]),  # the control: a valid catalog call
    ]
    r = redis_server.client(0)
    for message in planted:
        r.lpush("celery", message)  # kombu's Redis transport: LPUSH, the worker BRPOPs
    client.record_issued(list(ids.values()))

    def state(task_id: str) -> str:
        status = client.status(task_id)
        return status.state if status else "UNKNOWN"

    wait_until(lambda: state(ids["control"]) == "SUCCESS", 30, "the control task")
    # The control ran after every planted message was taken (one queue, in order).
    wait_until(lambda: r.llen("celery") == 0 and r.hlen("unacked") == 0, 30, "queue drained")
    states = {name: state(task_id) for name, task_id in ids.items()}
    log = worker.log.read_text()
    print(states)
    assert client.status(ids["control"]).result == 42
    # Pickle: refused before decoding (accept_content is JSON only), no state stored.
    assert not marker.exists(), "the pickle payload was unpickled"
    assert states["pickle"] == "PENDING", states
    assert "Refusing to deserialize untrusted content of type pickle" in log
    # Any name outside the catalog, Celery's own built-ins included: NotRegistered.
    for name in ("builtin", "unknown"):
        status = client.status(ids[name])
        assert status is not None and status.state == "FAILURE", states
        assert status.error is not None and status.error.type == "NotRegistered", status
    assert f"celery.accumulate[{ids['builtin']}] succeeded" not in log
