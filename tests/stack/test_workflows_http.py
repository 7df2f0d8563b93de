"""T1: workflows through HTTP on a real worker and Redis: results, failure, cancel, timeout, SSE."""

import json
import this  # the Zen of Python: a real text that ships with every interpreter
import threading
import time
from typing import Any

import pytest
import redis

from celery_harder import keys
from celery_harder.documents import analyse_text, summarise
from tests.support.polling import poll_json, wait_until
from tests.support.stack import ApiServer, RedisServer

FINAL = {"Succeeded", "Failed", "Cancelled"}


def add(*args: Any) -> dict[str, Any]:
    return {"task": "add", "args": list(args)}


def post(api: ApiServer, path: str, body: Any) -> dict[str, Any]:
    with api.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def finish(api: ApiServer, workflow_id: str, timeout: float = 60) -> dict[str, Any]:
    with api.client() as client:
        return poll_json(
            client, f"/workflows/{workflow_id}", lambda b: b["phase"] in FINAL, timeout
        )


def run(api: ApiServer, path: str, body: Any) -> dict[str, Any]:
    return finish(api, post(api, path, body)["id"])


def test_chain_gives_24(api: ApiServer) -> None:
    status = run(api, "/chain", {"steps": [add(2, 2), add(4), {"task": "mul", "args": [3]}]})
    assert (status["phase"], status["result"], status["progress"]) == ("Succeeded", 24, "3/3")


def test_group_keeps_order(api: ApiServer) -> None:
    status = run(api, "/group", {"tasks": [add(i, i) for i in range(10)]})
    assert status["result"] == [2 * i for i in range(10)]


def test_chord_gives_90(api: ApiServer) -> None:
    status = run(
        api, "/chord", {"header": [add(i, i) for i in range(10)], "body": {"task": "xsum"}}
    )
    assert (status["result"], status["progress"]) == (90, "11/11")


def test_nested_chord_of_chains_and_groups(api: ApiServer) -> None:
    spec = {
        "chord": {
            "header": [
                {"chain": [add(1, 1), {"task": "mul", "args": [10]}]},  # 20
                {"group": [add(1, 2), add(3, 4)]},  # 3, 7 (a group in a header is flattened)
                {"chain": [add(5, 5), {"group": [add(1), add(2)]}, {"task": "xsum"}]},  # 23
            ],
            "body": {"task": "xsum"},
        }
    }
    status = run(api, "/workflows", {"workflow": spec})
    assert status["phase"] == "Succeeded", status
    assert status["result"] == 20 + 3 + 7 + 23
    assert status["progress"] == "9/9" and status["counts"]["total"] == 9


def test_failure_mid_chain_names_the_node_and_later_steps_never_start(
    api: ApiServer, redis_server: RedisServer
) -> None:
    spec = {"chain": [add(1, 1), {"task": "fail"}, add(1), add(2)]}
    submitted = post(api, "/workflows", {"workflow": spec})
    status = finish(api, submitted["id"])
    assert status["phase"] == "Failed" and status["failedNode"] == "workflow.chain[1]"
    assert "workflow.chain[1] (fail) failed: DeliberateFailure" in status["message"]
    assert [n["phase"] for n in status["nodes"]] == ["Succeeded", "Failed", "Skipped", "Skipped"]
    later = [t["taskId"] for t in submitted["tasks"][2:]]
    redis = redis_server.client()
    assert not any(redis.exists(keys.DELIVERIES + t) for t in later), "a later step ran"


def test_cancel_stops_everything_further(api: ApiServer, redis_server: RedisServer) -> None:
    spec = {"chain": [{"task": "sleep", "args": [2]}] + [{"task": "sleep", "args": []}] * 3}
    submitted = post(api, "/workflows", {"workflow": spec})
    wid = submitted["id"]
    with api.client() as client:
        poll_json(client, f"/workflows/{wid}", lambda b: b["nodes"][0]["phase"] == "Running")
        cancelled = client.delete(f"/workflows/{wid}")
        assert cancelled.status_code == 202
        assert cancelled.json()["phase"] == "Cancelled"
        # The running step was not terminated: it finishes; nothing after it starts.
        done = poll_json(
            client, f"/workflows/{wid}", lambda b: b["nodes"][0]["phase"] == "Succeeded"
        )
        assert done["phase"] == "Cancelled"
        # The next step reaches a worker and is refused there (REVOKED), never run.
        refused = poll_json(
            client, f"/workflows/{wid}", lambda b: b["nodes"][1]["state"] == "REVOKED"
        )
    assert [n["phase"] for n in refused["nodes"]][1:] == ["Cancelled"] * 3
    redis = redis_server.client()
    later = [t["taskId"] for t in submitted["tasks"][1:]]
    assert not any(redis.exists(keys.DELIVERIES + t) for t in later), "a step started after cancel"


def test_cancel_with_terminate_kills_the_running_task(api: ApiServer) -> None:
    wid = post(api, "/workflows", {"workflow": {"task": "sleep", "args": [30]}})["id"]
    with api.client() as client:
        poll_json(client, f"/workflows/{wid}", lambda b: b["nodes"][0]["phase"] == "Running")
        assert client.delete(f"/workflows/{wid}", params={"terminate": "true"}).status_code == 202
        status = poll_json(
            client, f"/workflows/{wid}", lambda b: b["nodes"][0]["state"] == "REVOKED"
        )
    assert status["phase"] == "Cancelled"


def test_timeout_fails_with_reason_timeout(api: ApiServer) -> None:
    wid = post(
        api, "/workflows", {"workflow": {"task": "sleep", "args": [30]}, "timeoutSeconds": 1}
    )["id"]
    status = finish(api, wid, timeout=15)
    assert (status["phase"], status["reason"]) == ("Failed", "Timeout")
    with api.client() as client:
        killed = poll_json(
            client, f"/workflows/{wid}", lambda b: b["nodes"][0]["state"] == "REVOKED"
        )
    assert killed["phase"] == "Failed"


def test_sse_stream_reports_running_progress_and_the_end(api: ApiServer) -> None:
    spec = {"group": [{"task": "sleep", "args": [s]} for s in (0.5, 1.5, 2.5)]}
    wid = post(api, "/workflows", {"workflow": spec})["id"]
    events: list[dict[str, Any]] = []
    with api.client(timeout=30) as client:  # noqa: SIM117
        with client.stream("GET", f"/workflows/{wid}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    assert kind == "status"
                    events.append(json.loads(line.removeprefix("data: ")))
    # The loop above ended: the server closed the stream after the final phase.
    phases = [e["phase"] for e in events]
    assert "Running" in phases and phases[-1] == "Succeeded"
    done = [int(e["progress"].split("/")[0]) for e in events]
    assert done == sorted(done) and len(set(done)) >= 3  # 0 or 1, 2, 3 done


def test_document_pipeline_matches_one_piece_analysis(api: ApiServer, stack) -> None:
    text = "".join(this.d.get(c, c) for c in this.s) * 5  # decoded Zen, five times
    submitted = post(api, "/documents", {"text": text, "name": "zen", "linesPerChunk": 7})
    status = finish(api, submitted["id"])
    assert status["phase"] == "Succeeded", status
    analyse_nodes = [t for t in submitted["tasks"] if t["task"] == "documents.analyse"]
    assert len(analyse_nodes) == -(-len(text.splitlines()) // 7)
    whole = summarise(analyse_text(text), 10)
    report = status["result"]
    assert {k: report[k] for k in whole} == whole
    written = (stack.workdir / "data" / report["report"]).read_text()
    assert f"words: {whole['words']}" in written


@pytest.mark.parametrize(
    ("workflow", "path"),
    [
        ({"chain": [add(1, 1), {"task": "nope"}]}, "workflow.chain[1]"),
        ({"group": [add(1, 1), add("x", 1)]}, "workflow.group[1]"),
        (
            {
                "chord": {
                    "header": [{"task": "add", "args": [1, 2], "group": []}],
                    "body": {"task": "xsum"},
                }
            },
            "workflow.chord.header[0]",
        ),
        ({"chain": [add(1, 1), {"group": []}]}, "workflow.chain[1].group"),
        ({"group": [add(i, i) for i in range(1001)]}, "workflow.group[1000]"),
        ("deep", "workflow" + ".chain[0]" * 16),
        (
            {"group": [add(1, 1), {"task": "request_info", "args": ["x" * 300_000]}]},
            "workflow.group[1]",
        ),
    ],
    ids=[
        "unknown-task",
        "wrong-types",
        "two-kinds",
        "empty-group",
        "too-many",
        "too-deep",
        "oversize-args",
    ],
)
def test_invalid_specs_are_422_with_the_path_and_enqueue_nothing(
    idle_api: ApiServer, redis_server: RedisServer, workflow: Any, path: str
) -> None:
    from tests.support.stack import IDLE_DB, queued_messages  # noqa: PLC0415

    if workflow == "deep":
        workflow = add(1, 1)
        for _ in range(17):
            workflow = {"chain": [workflow]}
    keys_before = redis_server.client(IDLE_DB).dbsize()
    queued_before = queued_messages(redis_server)
    with idle_api.client() as client:
        response = client.post("/workflows", json={"workflow": workflow})
    assert response.status_code == 422, response.text
    locations = [d["loc"][-1] for d in response.json()["detail"]]
    assert path in locations, locations
    assert queued_messages(redis_server) == queued_before
    assert redis_server.client(IDLE_DB).dbsize() == keys_before


def test_unknown_workflow_is_404(api: ApiServer) -> None:
    with api.client() as client:
        assert client.get("/workflows/nope").status_code == 404
        assert client.delete("/workflows/nope").status_code == 404
        assert client.get("/workflows/nope/events").status_code == 404


def sse_lines(
    api: ApiServer, wid: str, headers: dict[str, str] | None = None, stop_after: int | None = None
) -> list[str]:
    """The raw lines of one SSE connection, until the server ends it (or `stop_after` events)."""
    lines: list[str] = []
    with api.client(timeout=60) as client:  # noqa: SIM117
        with client.stream("GET", f"/workflows/{wid}/events", headers=headers) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                events = sum(x.startswith("id: ") for x in lines)
                if stop_after is not None and events >= stop_after:
                    break
    return lines


def test_sse_keeps_a_long_wait_alive_with_pings_then_sends_the_end(api: ApiServer) -> None:
    wid = post(api, "/workflows", {"workflow": {"task": "sleep", "args": [40]}})["id"]
    lines = sse_lines(api, wid)
    pings = [i for i, line in enumerate(lines) if line == ": ping"]
    ids = [i for i, line in enumerate(lines) if line.startswith("id: ")]
    # Nothing changes for 40 s: a ping every 15 s keeps the connection from looking idle.
    assert len(pings) >= 2, lines
    final = json.loads(next(x for x in reversed(lines) if x.startswith("data: "))[6:])
    assert final["phase"] == "Succeeded"
    assert ids[-1] > pings[-1], "the final event comes after the pings"


def test_sse_reconnect_with_last_event_id_repeats_nothing(api: ApiServer) -> None:
    spec = {"group": [{"task": "sleep", "args": [s]} for s in (1, 2, 3)]}
    wid = post(api, "/workflows", {"workflow": spec})["id"]
    first = sse_lines(api, wid, stop_after=1)
    (seen,) = [x[4:] for x in first if x.startswith("id: ")]
    resumed = sse_lines(api, wid, headers={"Last-Event-ID": seen})
    resumed_ids = [x[4:] for x in resumed if x.startswith("id: ")]
    assert resumed_ids and seen not in resumed_ids
    assert len(resumed_ids) == len(set(resumed_ids))
    # After the end: the last id names the final status, so nothing is sent again.
    assert [x for x in sse_lines(api, wid, headers={"Last-Event-ID": resumed_ids[-1]}) if x] == []
    assert len([x for x in sse_lines(api, wid) if x.startswith("id: ")]) == 1


class RecordReads:
    """Redis MONITOR in a thread: when the workflow's record was read (HGETALL)."""

    def __init__(self, redis_server: RedisServer, workflow_id: str) -> None:
        self.key = keys.WORKFLOW + workflow_id
        self.times: list[float] = []
        self.monitor = redis_server.client().monitor()
        self.monitor.__enter__()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        try:
            for entry in self.monitor.listen():
                if entry["command"].upper() == f"HGETALL {self.key}".upper():
                    self.times.append(time.monotonic())
        except (redis.RedisError, OSError, ValueError):
            return  # the monitor connection was closed: the watch is over

    def between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.times)

    def close(self) -> None:
        self.monitor.connection.disconnect()
        self.thread.join(10)


def test_sse_stops_polling_when_the_client_disconnects(
    api: ApiServer, redis_server: RedisServer
) -> None:
    """A client that goes away costs nothing further: its stream's poll loop ends."""
    wid = post(api, "/workflows", {"workflow": {"task": "sleep", "args": [30]}})["id"]
    period = 0.5  # CELERY_HARDER_WORKFLOW_POLL_INTERVAL's default, which the API uses here
    reads = RecordReads(redis_server, wid)
    try:
        with api.client(timeout=60) as client:  # noqa: SIM117
            with client.stream("GET", f"/workflows/{wid}/events") as response:
                assert response.status_code == 200
                opened = time.monotonic()
                # Connected: one read of the record per poll period.
                wait_until(lambda: reads.between(opened, time.monotonic()) >= 4, 30, what="polling")
        closed = time.monotonic()
        # Gone: watch a window of eight poll periods (absence can only be shown over
        # time), after one period of grace for the read in flight at the close.
        window = (closed + period, closed + 9 * period)
        wait_until(lambda: time.monotonic() >= window[1], 30, what="the watch window")
        after = reads.between(*window)
        during = reads.between(opened, closed)
    finally:
        reads.close()
        with api.client() as client:
            client.delete(f"/workflows/{wid}", params={"terminate": "true"})
    assert during >= 4, during
    assert after == 0, f"the stream kept polling after the client left: {after} reads"


def test_an_immutable_step_ignores_the_previous_result(api: ApiServer) -> None:
    """docs/workflow-spec.md: `immutable: true` is Celery's .si()."""
    steps = [
        add(2, 2),
        {"task": "add", "args": [10, 20], "immutable": True},
        {"task": "mul", "args": [2]},
    ]
    status = run(api, "/workflows", {"workflow": {"chain": steps}})
    assert (status["phase"], status["result"]) == ("Succeeded", 60)  # (10 + 20) * 2, not 4
    body = {"task": "add", "args": [1, 2], "immutable": True}
    chord = {"chord": {"header": [add(1, 1), add(2, 2)], "body": body}}
    assert run(api, "/workflows", {"workflow": chord})["result"] == 3
