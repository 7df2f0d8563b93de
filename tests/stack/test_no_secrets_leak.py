"""T1: the Redis password never shows in a response body or a process log.

A real redis-server with `requirepass`, a real worker and a real uvicorn. Every kind
of answer is collected: results, a failed task, a workflow's status, the 503s of a
Redis that is gone and of a wrong password. Neither the password in use nor a wrong
one tried may appear in any of them, nor in the worker's or the API's log. A positive
control shows that the search finds a secret that is there.
"""

import secrets
from pathlib import Path

import httpx

from celery_harder_dev.local_processes import stop_process
from celery_harder_dev.polling import wait_until
from tests.support.polling import poll_json
from tests.support.stack import StackEnv, running_api, running_redis, running_worker

FINAL = {"SUCCESS", "FAILURE"}


class Evidence:
    """Every body and log collected, searched for secrets at the end."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, what: str, response: httpx.Response) -> httpx.Response:
        self.texts[f"{what} -> {response.status_code}"] = response.text
        return response

    def logs(self, *workdirs: Path) -> None:
        for log in (log for d in workdirs for log in d.glob("*.log")):
            self.texts[str(log)] = log.read_text()

    def leaks(self, secret: str) -> list[str]:
        return [what for what, text in self.texts.items() if secret in text]


def collect_with_the_right_password(evidence: Evidence, workdir: Path, password: str) -> None:
    """Results, a failure and a workflow status; then the same processes with Redis gone."""
    with running_redis(workdir / "redis", password) as server:
        stack = StackEnv(broker_url=server.url(), workdir=workdir)
        with (
            running_worker(stack, "w", concurrency=1) as worker,
            running_api(stack) as api,
            api.client() as http,
        ):
            ok = evidence.add("add", http.post("/add", json={"x": 2, "y": 3})).json()
            info = evidence.add("info", http.post("/test-request-info", json={"data": "hi"}))
            spec = {"workflow": {"task": "fail", "args": ["boom"]}}
            failing = evidence.add("workflow", http.post("/workflows", json=spec)).json()
            for task_id in (ok["task_id"], info.json()["task_id"]):
                done = poll_json(http, f"/result/{task_id}", lambda b: b["state"] in FINAL, 60)
                evidence.texts[f"result {task_id}"] = str(done)
            status = poll_json(
                http, f"/workflows/{failing['id']}", lambda b: b["phase"] == "Failed", 60
            )
            evidence.texts["failed workflow"] = str(status)
            evidence.add("readyz", http.get("/readyz"))

            stop_process(server.process)
            evidence.add("add, Redis gone", http.post("/add", json={"x": 1, "y": 1}))
            evidence.add("readyz, Redis gone", http.get("/readyz"))
            evidence.add("workflow, Redis gone", http.get(f"/workflows/{failing['id']}"))
            wait_until(lambda: "Cannot connect" in worker.log.read_text(), 60, "a worker retry")
            evidence.add("result, Redis gone", http.get(f"/result/{ok['task_id']}"))


def collect_with_a_wrong_password(evidence: Evidence, workdir: Path, password: str) -> str:
    """An API and a worker that bring a wrong password; returns the wrong one."""
    wrong = secrets.token_urlsafe(18)
    with running_redis(workdir / "redis", password) as server:
        stack = StackEnv(broker_url=server.url().replace(password, wrong), workdir=workdir)
        with running_api(stack) as api, api.client() as http:
            evidence.add("readyz, wrong password", http.get("/readyz"))
            evidence.add("add, wrong password", http.post("/add", json={"x": 1, "y": 1}))
            evidence.add("result, wrong password", http.get("/result/some-id"))
    return wrong


def test_no_response_or_log_shows_the_redis_password(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(18)
    evidence = Evidence()
    collect_with_the_right_password(evidence, tmp_path / "right", password)
    wrong = collect_with_a_wrong_password(evidence, tmp_path / "wrong", password)
    evidence.logs(tmp_path / "right", tmp_path / "wrong")

    codes = {what.rsplit(" -> ", 1)[-1] for what in evidence.texts if " -> " in what}
    assert {"200", "202", "503"} <= codes, sorted(evidence.texts)
    assert any("WRONGPASS" in t or "invalid" in t.lower() for t in evidence.texts.values())
    # Positive control: the search finds a secret that is there.
    evidence.texts["control"] = f"redis://:{password}@127.0.0.1"
    assert evidence.leaks(password) == ["control"], evidence.leaks(password)
    assert evidence.leaks(wrong) == []
