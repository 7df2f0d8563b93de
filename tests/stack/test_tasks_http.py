"""T1: the seed's endpoints through HTTP against redis-server, a prefork worker and uvicorn."""

from pathlib import Path

from tests.support.polling import poll_json, wait_done
from tests.support.stack import ApiServer, StackEnv


def submit(api: ApiServer, path: str, body: object) -> str:
    with api.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def test_add_gives_five(api: ApiServer) -> None:
    task_id = submit(api, "/add", {"x": 2, "y": 3})
    with api.client() as client:
        body = wait_done(client, task_id)
    assert body == {
        "task_id": task_id,
        "state": "SUCCESS",
        "result": 5,
        "progress": None,
        "error": None,
    }


def test_request_info_shows_self_request(api: ApiServer) -> None:
    data = {"user": "kim", "items": [1, 2]}
    task_id = submit(api, "/test-request-info", {"data": data})
    with api.client() as client:
        info = wait_done(client, task_id)["result"]
    assert info["task_id"] == task_id
    assert info["task_name"] == "request_info"
    assert info["retries"] == 0
    assert info["args"] == []
    assert info["kwargs"] == {"data": data}
    assert info["root_id"] == task_id
    assert info["parent_id"] is None
    assert info["group"] is None


def test_running_sleep_shows_rising_progress(api: ApiServer) -> None:
    task_id = submit(api, "/tasks", {"task": "sleep", "kwargs": {"seconds": 2.5}})
    seen: list[float] = []

    def record(body: dict) -> bool:
        if body["state"] == "PROGRESS":
            seen.append(body["progress"]["percent"])
        return body["state"] == "SUCCESS"

    with api.client() as client:
        final = poll_json(client, f"/result/{task_id}", record, timeout=30)
    assert final["result"] == {"slept": 2.5}
    distinct = sorted(set(seen))
    assert len(distinct) >= 3, seen
    assert seen == sorted(seen), "progress went backwards"
    assert distinct[0] < 50 < distinct[-1]


def test_fail_reports_type_and_message(api: ApiServer) -> None:
    task_id = submit(api, "/tasks", {"task": "fail", "args": ["disk on fire"]})
    with api.client() as client:
        body = wait_done(client, task_id)
    assert body["state"] == "FAILURE"
    assert body["error"] == {"type": "DeliberateFailure", "message": "disk on fire"}
    assert body["result"] is None


def test_unknown_id_is_404(api: ApiServer) -> None:
    with api.client() as client:
        response = client.get("/result/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert "never issued" in response.json()["detail"]


def test_issued_but_queued_id_is_pending_not_404(api: ApiServer, stack: StackEnv) -> None:
    # A sleep occupies both pool processes, so the third task waits in the queue.
    blockers = [submit(api, "/tasks", {"task": "sleep", "args": [1.5]}) for _ in range(2)]
    queued = submit(api, "/add", {"x": 1, "y": 1})
    with api.client() as client:
        first = client.get(f"/result/{queued}").json()
        assert first["state"] in ("PENDING", "STARTED", "SUCCESS")
        assert wait_done(client, queued)["result"] == 2
        for blocker in blockers:
            assert wait_done(client, blocker)["state"] == "SUCCESS"


def test_document_report_is_written_inside_the_data_dir(api: ApiServer, stack: StackEnv) -> None:
    text = "The quick brown fox\njumps over the lazy dog\nthe end\n"
    analysed = submit(api, "/tasks", {"task": "documents.analyse", "args": [text]})
    with api.client() as client:
        stats = wait_done(client, analysed)["result"]
        assert stats["lines"] == 3 and stats["words"] == 11 and stats["characters"] == len(text)
        report_id = submit(
            api,
            "/tasks",
            {"task": "documents.write_report", "kwargs": {"stats": stats, "name": "fox"}},
        )
        report = wait_done(client, report_id)["result"]
    assert report["report"] == f"output_{report_id[:8]}-fox.txt"
    path = stack.workdir / "data" / report["report"]
    assert path.is_file()
    assert Path(path).resolve().parent == (stack.workdir / "data").resolve()
    assert "the: 3" in path.read_text()


def test_catalog_lists_every_task(api: ApiServer) -> None:
    with api.client() as client:
        names = {entry["name"] for entry in client.get("/tasks").json()}
    assert {"add", "mul", "xsum", "request_info", "sleep", "fail"} <= names
    assert {"documents.analyse", "documents.merge", "documents.write_report"} <= names


def test_metrics_count_submissions_by_task(api: ApiServer) -> None:
    submit(api, "/add", {"x": 1, "y": 2})
    with api.client() as client:
        text = client.get("/metrics").text
    assert 'celery_harder_tasks_submitted_total{task="add"}' in text
    assert "http_requests_total" in text
