"""T0: B7's floor app loads the API's library modules and none of the project's own."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.apps.libraries import import_libraries, is_library

ROOT = Path(__file__).resolve().parents[2]
# No Redis is reached: building the API only configures its clients.
API_ENV = {"CELERY_HARDER_API_AUTH": "false", "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}


def test_only_modules_outside_the_project_count_as_libraries() -> None:
    assert is_library("redis.asyncio") and is_library("celery.app.amqp") and is_library("json")
    assert not is_library("celery_harder.publish")
    assert not is_library("celery_harder_api.routes.tasks")
    assert not is_library("bench.apps.hello") and not is_library("__main__")


def test_a_module_that_does_not_load_alone_is_named_and_skipped() -> None:
    failed = import_libraries(["json", "celery_harder.no_such", "no_such_library_module"])
    assert failed == ["no_such_library_module"]


def test_the_api_loads_its_libraries_and_its_own_code() -> None:
    env = {**os.environ, **API_ENV}
    names = subprocess.run(
        [sys.executable, "-c", "from bench.apps.libraries import loaded_modules as m;"
         "import json; print(json.dumps(m()))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    modules = json.loads(names)
    assert {"redis", "celery.app.amqp", "kombu.transport.redis"} <= set(modules)
    assert "celery_harder_api.app" in modules
    assert modules.index("celery") < modules.index("celery.app.amqp")


def test_the_floor_app_imports_every_library_and_nothing_of_the_project() -> None:
    probe = (
        "import json, sys\n"
        "from bench.apps.libraries import create_app\n"
        "app = create_app()\n"
        "print(json.dumps({'not_loaded': app.state.not_loaded, 'modules': list(sys.modules)}))\n"
    )
    env = {**os.environ, **API_ENV}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    found = json.loads(out)
    assert found["not_loaded"] == []
    tops = {name.split(".")[0] for name in found["modules"]}
    assert {"redis", "celery", "kombu", "pydantic_settings", "prometheus_client"} <= tops
    assert not {"celery_harder", "celery_harder_api"} & tops
