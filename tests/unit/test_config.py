"""T0: settings and the shared Celery configuration."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from celery_harder import defaults
from celery_harder.celery_config import celery_config, create_celery_app, worker_config
from celery_harder.settings import Settings


def test_seed_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://b:1/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://r:2/1")
    monkeypatch.setenv("CELERY_HARDER_QUEUE", "jobs")
    settings = Settings()
    assert (settings.broker_url, settings.result_backend_url, settings.queue) == (
        "redis://b:1/0",
        "redis://r:2/1",
        "jobs",
    )


def test_result_backend_defaults_to_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://b:1/0")
    assert Settings().result_backend_url == "redis://b:1/0"


def test_configuration_choices() -> None:
    conf = celery_config(Settings(visibility_timeout=1234, soft_shutdown_timeout=7))
    assert conf["accept_content"] == ["json"] and conf["result_accept_content"] == ["json"]
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["worker_disable_prefetch"]
    assert conf["broker_transport_options"]["visibility_timeout"] == 1234
    # In-flight messages go to the pool's own hash (the chart sets one per pool).
    pool = celery_config(Settings(unacked_key="unacked-cpu"))["broker_transport_options"]
    assert (pool["unacked_key"], pool["unacked_index_key"], pool["unacked_mutex_key"]) == (
        "unacked-cpu", "unacked-cpu_index", "unacked-cpu_mutex",
    )  # fmt: skip
    assert "unacked_key" not in conf["result_backend_transport_options"]
    assert conf["result_backend_transport_options"]["visibility_timeout"] == 1234
    assert conf["worker_soft_shutdown_timeout"] == 7
    assert conf["task_track_started"] and conf["worker_send_task_events"]
    assert conf["task_send_sent_event"] and conf["broker_connection_retry_on_startup"]


def test_the_default_profile_is_celery_config_and_fast_changes_delivery_only() -> None:
    """A worker takes the fast profile only when told; it changes delivery, nothing else."""
    default = Settings()
    assert default.worker_profile == "default"
    assert worker_config(default) == celery_config(default)
    fast = Settings(worker_profile="fast", fast_prefetch_multiplier=8)
    changed = {k: v for k, v in worker_config(fast).items() if celery_config(fast).get(k) != v}
    assert changed == {
        "task_acks_late": False,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 8,
        "worker_disable_prefetch": False,
        "task_track_started": False,
    }
    # Clients (the API, the operator) never take a worker profile.
    client = create_celery_app("client", fast, send_only=True)
    assert client.conf.task_track_started and client.conf.task_acks_late
    with pytest.raises(ValueError):
        Settings(worker_profile="turbo")


@pytest.mark.parametrize(
    ("kind", "backend_class"),
    [("send_only", "SendOnlyRedisBackend"), ("worker", "WorkerRedisBackend"),
     ("neither", "RedisBackend")],
)  # fmt: skip
def test_each_app_keeps_its_result_backend_class_when_the_seed_variable_is_set(
    monkeypatch: pytest.MonkeyPatch, kind: str, backend_class: str
) -> None:
    # Celery's own conf.result_backend would take the variable's plain URL instead.
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://r:2/1")
    flags = {"send_only": kind == "send_only", "worker": kind == "worker"}
    app = create_celery_app("t", Settings(broker_url="redis://b:1/0"), **flags)
    assert type(app.backend).__name__ == backend_class
    assert app.backend.connparams["host"] == "r"  # the variable's URL, through Settings


def test_app_refuses_pickle() -> None:
    app = create_celery_app("t", Settings())
    assert "pickle" not in app.conf.accept_content
    assert app.conf.task_serializer == "json"


def test_worker_registers_every_catalog_task() -> None:
    from background.celery import celery_app  # noqa: PLC0415
    from celery_harder.catalog import CATALOG  # noqa: PLC0415

    celery_app.loader.import_default_modules()
    registered = {n for n in celery_app.tasks if not n.startswith("celery.")}
    assert registered == set(CATALOG)


def test_heartbeat_freshness(tmp_path: Path) -> None:
    from background.heartbeat import touch  # noqa: PLC0415
    from background.probe import is_fresh, main  # noqa: PLC0415

    beat = tmp_path / "hb"
    assert not is_fresh(beat, 60)
    touch(beat)
    assert is_fresh(beat, 60)
    assert not is_fresh(beat, 60, now=beat.stat().st_mtime + 61)
    assert main(["--file", str(beat), "--max-age", "60"]) == 0
    assert main(["--file", str(tmp_path / "missing")]) == 1


def test_the_heartbeat_files_say_ready_alive_or_neither(tmp_path: Path) -> None:
    from background.heartbeat import HeartbeatFiles  # noqa: PLC0415
    from background.probe import main  # noqa: PLC0415

    files = HeartbeatFiles(tmp_path / "worker.heartbeat")

    def probes(age: float = 0) -> tuple[bool, bool]:
        """Readiness (max-age 20) and liveness (max-age 120), `age` seconds after a beat."""
        if files.heartbeat.exists():
            beat = time.time() - age
            os.utime(files.heartbeat, (beat, beat))
        ready = ["--file", str(files.heartbeat), "--max-age", "20"]
        live = ["--file", str(files.heartbeat), "--max-age", "120", "--live"]
        return main(ready) == 0, main(live) == 0

    assert probes() == (False, False)
    files.consuming()
    assert probes() == (True, True)
    # PINGs go unanswered and Celery has not noticed: the file ages.
    assert probes(age=30) == (False, True)
    assert probes(age=130) == (False, False)
    files.consuming()
    files.lost_connection()  # the consumer restarts and retries its broker
    assert probes() == (False, True)
    files.consuming()
    assert probes() == (True, True) and not files.reconnecting.exists()
    files.lost_connection()
    files.clear()
    assert probes() == (False, False)


def test_the_probe_imports_the_standard_library_only(tmp_path: Path) -> None:
    """kubelet starts it once per probe and period: no Celery, pydantic or settings."""
    beat = tmp_path / "hb"
    beat.touch()
    code = (
        "import sys, runpy; sys.argv = ['probe', '--file', sys.argv[1]]\n"
        "try: runpy.run_module('background.probe', run_name='__main__')\n"
        "except SystemExit as e: rc = e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('celery', 'kombu', 'pydantic', 'pydantic_settings', 'redis'))\n"
        "print(rc, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(beat)], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "0 []"
    assert Settings().heartbeat_file == Path(defaults.HEARTBEAT_FILE)
