"""T1: a 1,000-leaf workflow runs, and reading its status costs what a 10-leaf one costs.

The Redis work of one status read is counted with Redis's own command statistics on a
private server holding a copy of the workflow's keys, so that the worker's and the
API's background traffic on the shared server cannot blur the count.
"""

from typing import Any

import redis as redis_lib

from celery_harder import keys
from celery_harder.settings import Settings
from celery_harder.task_client import create_task_client
from celery_harder.workflow.engine import WorkflowEngine
from celery_harder.workflow.record import record_key
from tests.support.polling import poll_json
from tests.support.stack import ApiServer, RedisServer


def run_group(api: ApiServer, size: int) -> dict[str, Any]:
    body = {"workflow": {"group": [{"task": "add", "args": [i, i]} for i in range(size)]}}
    with api.client(timeout=60) as client:
        submitted = client.post("/workflows", json=body)
        assert submitted.status_code == 202, submitted.text
        wid = submitted.json()["id"]
        return poll_json(
            client,
            f"/workflows/{wid}",
            lambda b: b["phase"] == "Succeeded",
            timeout=300,
            interval=0.5,
        )


def copy_workflow(source: redis_lib.Redis, target: redis_lib.Redis, status: dict[str, Any]) -> None:
    names = [record_key(status["id"])]
    for node in status["nodes"]:
        names += [f"celery-task-meta-{node['taskId']}", keys.STARTED + node["taskId"]]
    pipe = source.pipeline(transaction=False)
    for name in names:
        pipe.dump(name)
    restore = target.pipeline(transaction=False)
    for name, blob in zip(names, pipe.execute(), strict=True):
        assert blob is not None, f"{name} missing"
        restore.restore(name, 0, blob, replace=True)
    restore.execute()


def command_calls(server: redis_lib.Redis) -> dict[str, int]:
    stats = server.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name not in ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config")
    }


def test_status_of_1000_leaves_costs_the_same_redis_commands_as_10(
    api: ApiServer, redis_server: RedisServer, private_redis: RedisServer
) -> None:
    small, large = run_group(api, 10), run_group(api, 1000)
    assert large["counts"]["total"] == 1000 and large["progress"] == "1000/1000"
    assert large["result"] == [2 * i for i in range(1000)]
    costs = {}
    stats = private_redis.client()  # one connection, opened before the count starts
    stats.ping()
    for status in (small, large):
        copy_workflow(redis_server.client(), private_redis.client(), status)
        engine = WorkflowEngine(create_task_client(Settings(broker_url=private_redis.url())))
        assert engine.status(status["id"]) is not None  # connections made, scripts loaded
        stats.config_resetstat()
        again = engine.status(status["id"])
        costs[status["counts"]["total"]] = command_calls(stats)
        assert again is not None and again.progress == status["progress"]
        engine.client.app.close()
    assert costs[10] == costs[1000], costs
    assert costs[1000] == {"hgetall": 1, "mget": 2}, costs
